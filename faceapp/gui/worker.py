"""Capture and processing off the GUI thread.

The worker reads the newest frame, runs the pipeline on it and hands the result to the
GUI through a one-slot mailbox: while the GUI has not taken the last result, newer ones
replace it, so a slow GUI sees fresh frames rather than a queue of old ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..capture import CameraError, CameraLost, FrameSource
from ..errors import FaceappError
from ..pipeline import ImageResult, Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    frame: np.ndarray  # (H, W, 3) RGB uint8
    result: ImageResult
    latency_ms: float
    fps: float


class ProcessingWorker(QObject):
    """Runs ``source -> pipeline`` in a loop on its own (Python) thread.

    The object lives in the GUI thread; its signals are emitted from the loop's thread
    and so reach GUI slots as queued calls.

    Signals:
        frameReady: a new :class:`FrameResult` is in the mailbox (call :meth:`take`).
        sourceFailed(str): the source could not be opened or stopped; the message is for the user.
        sourceOpened(str): the source's name, once it delivers frames.
    """

    frameReady = Signal()
    sourceFailed = Signal(str)
    sourceOpened = Signal(str)

    def __init__(self, pipeline: Pipeline, open_source: Callable[[], FrameSource]) -> None:
        super().__init__()
        self.pipeline = pipeline
        self._open_source = open_source
        self._mailbox: FrameResult | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: FrameSource | None = None
        self.frames_processed = 0

    # -- control (GUI thread) ------------------------------------------------
    def start(self) -> None:
        """Start (or restart, after a failure or :meth:`stop`) the capture loop."""
        self.stop()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="faceapp-capture", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def take(self) -> FrameResult | None:
        with self._lock:
            item, self._mailbox = self._mailbox, None
            return item

    # -- loop (worker thread) ------------------------------------------------
    def _run(self) -> None:
        try:
            self._source = self._open_source()
        except (CameraError, FaceappError, OSError) as exc:
            self.sourceFailed.emit(str(exc))
            return
        self.sourceOpened.emit(self._source.name)
        last = time.perf_counter()
        fps = 0.0
        try:
            while not self._stop.is_set():
                if self._paused.is_set():
                    time.sleep(0.03)
                    continue
                try:
                    frame = self._source.read()
                except (CameraLost, CameraError) as exc:
                    self.sourceFailed.emit(str(exc))
                    return
                t0 = time.perf_counter()
                try:
                    result = self.pipeline.match_image(frame, still=False)
                except FaceappError as exc:
                    self.sourceFailed.emit(f"processing stopped: {exc}")
                    return
                now = time.perf_counter()
                dt = now - last
                last = now
                fps = 1.0 / dt if fps == 0.0 else 0.9 * fps + 0.1 / max(dt, 1e-6)
                item = FrameResult(frame, result, (now - t0) * 1e3, fps)
                with self._lock:
                    pending = self._mailbox is not None
                    self._mailbox = item
                self.frames_processed += 1
                if not pending:
                    self.frameReady.emit()
        finally:
            if self._source is not None:
                self._source.close()
                self._source = None
