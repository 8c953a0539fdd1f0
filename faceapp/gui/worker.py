"""Capture, processing and photo matching off the GUI thread.

The live worker reads the newest frame, follows its faces with the core's live view
(:class:`faceapp.watch.LiveView`, the same path as ``watch``: a name is shown once the
track's evaluations agree on it and taken away as soon as one does not support it) and
hands the result to the GUI through a one-slot mailbox: while the GUI has not taken the
last result, newer ones replace it, so a slow GUI sees fresh frames rather than a queue
of old ones. A video file plays at its own frame rate (the source waits for each
frame's time), so it is not read faster than it would play. While guided enrolment is open, every face of
every frame is embedded instead (enrolment needs the embeddings).

Nothing that goes wrong on a worker thread is silent: every exception, ours or not,
ends the loop with one readable message on the ``failed`` signal, which the window shows
with a Retry button. :meth:`BackgroundThread.stop` always joins the thread, so the
pipeline is never closed under a running frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from faceapp.errors import FaceappError
from faceapp.gui.messages import for_gui
from faceapp.pipeline import Pipeline
from faceapp.recognise.track import TrackResult
from faceapp.types import FaceResult
from faceapp.vision.capture import FrameSource
from faceapp.vision.images import load_image
from faceapp.watch import Event, LiveView

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """One line for the user about an exception from a worker thread."""
    if isinstance(exc, FaceappError):
        return for_gui(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: close other programs or choose a lower camera resolution"
    return f"unexpected error ({type(exc).__name__}: {exc}); the details are in the log"


@dataclass(frozen=True)
class FrameResult:
    """One processed frame.

    Attributes:
        frame: ``(H, W, 3)`` RGB uint8.
        faces: every face with its match: :class:`~faceapp.types.FaceResult` for photos
            and enrolment frames, :class:`~faceapp.recognise.track.TrackResult` (whose ``match`` is
            ``None`` until the track has settled) for tracked live frames.
        latency_ms: time spent in the pipeline.
        fps: smoothed frames analysed (and shown) per second.
        source: where the frame came from (a source name or a photo's file name).
        source_fps: the source's own frame rate when it is paced (a video file, an image
            folder), else ``None``.
    """

    frame: np.ndarray
    faces: Sequence[FaceResult | TrackResult]
    latency_ms: float
    fps: float
    source: str = ""
    source_fps: float | None = None


def rate_text(fps: float, source_fps: float | None) -> str:
    """The live view's rate label: frames analysed a second, and the source's own rate when it has one.

    Every frame analysed is shown; a video whose frames come faster than they are
    analysed plays at its own speed with frames skipped.
    """
    analysed = f"{fps:.1f} fps analysed"
    return analysed if source_fps is None else f"{analysed} · source plays {source_fps:g} fps"


class BackgroundThread(QObject):
    """A Python thread driven from the GUI thread: start, stop (always joined), failure signal.

    Signals:
        failed(str): the work stopped on an error; the text is for the user.
        finished(): the work ended without an error (or was stopped).
    """

    failed = Signal(str)
    finished = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start (or restart, after a failure or :meth:`stop`) the work."""
        self.stop()
        self._stop.clear()
        self._thread = threading.Thread(target=self._guarded, name=f"faceapp-{type(self).__name__}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the work to stop and wait until its thread has ended."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            t0 = time.perf_counter()
            thread.join()
            waited = time.perf_counter() - t0
            if waited > 2.0:
                log.warning("%s took %.1f s to stop", type(self).__name__, waited)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user
            if isinstance(exc, FaceappError):
                log.warning("%s stopped: %s", type(self).__name__, exc)
            else:
                log.exception("%s stopped", type(self).__name__)
            self.failed.emit(describe(exc))
            return
        self.finished.emit()

    def run(self) -> None:
        raise NotImplementedError


class ProcessingWorker(BackgroundThread):
    """Runs ``source -> pipeline`` in a loop on its own thread.

    The object lives in the GUI thread; its signals are emitted from the loop's thread
    and so reach GUI slots as queued calls.

    Args:
        pipeline: the pipeline to match with.
        open_source: opens the frame source (called on the worker thread).
        on_result: called on the worker thread with each frame's faces (e.g. the
            unknown-faces inbox); an exception there stops the loop like any other.
        record: called on the worker thread with each event of a tracked face (its
            decision settled or changed, see :class:`~faceapp.watch.LiveView`), e.g.
            an :class:`~faceapp.watch.EventRecorder`; ``None`` records nothing.

    Signals:
        frameReady: a new :class:`FrameResult` is in the mailbox (call :meth:`take`).
        failed(str): capture or processing stopped; the message is for the user.
        sourceOpened(str): the source's name, once it is open.
    """

    frameReady = Signal()
    sourceOpened = Signal(str)

    def __init__(self, pipeline: Pipeline, open_source: Callable[[], FrameSource],
                 on_result: Callable[[Sequence[FaceResult | TrackResult]], None] | None = None,
                 record: Callable[[Event], None] | None = None) -> None:
        super().__init__()
        self._record = record
        self.pipeline = pipeline
        self.live = LiveView(pipeline)
        self._open_source = open_source
        self._on_result = on_result
        self._mailbox: FrameResult | None = None
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self._embed_all = threading.Event()
        self.frames_processed = 0

    def set_embed_all(self, on: bool) -> None:
        """Embed and match every face of every frame (for enrolment) instead of tracking."""
        if on:
            self._embed_all.set()
        else:
            self._embed_all.clear()

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

    def run(self) -> None:
        source = self._open_source()
        try:
            self.sourceOpened.emit(source.name)
            last = time.perf_counter()
            fps = 0.0
            while not self._stop.is_set():
                if self._paused.is_set():
                    time.sleep(0.03)
                    last = time.perf_counter()
                    continue
                frame = source.read()
                t0 = time.perf_counter()
                faces: Sequence[FaceResult | TrackResult]
                events: Sequence[Event] = ()
                if self._embed_all.is_set():
                    faces = self.pipeline.match_image(frame, still=False).faces
                    self.live.reset()
                else:
                    faces, events = self.live.step(frame, time.time(), source.name)
                if self._on_result is not None:
                    self._on_result(faces)
                if self._record is not None:
                    for event in events:
                        self._record(event)
                now = time.perf_counter()
                dt = now - last
                last = now
                fps = 1.0 / max(dt, 1e-6) if fps == 0.0 else 0.9 * fps + 0.1 / max(dt, 1e-6)
                item = FrameResult(frame, faces, (now - t0) * 1e3, fps, source.name, source.nominal_fps)
                with self._lock:
                    pending = self._mailbox is not None
                    self._mailbox = item
                self.frames_processed += 1
                if not pending:
                    self.frameReady.emit()
        finally:
            source.close()


class PhotoJob(BackgroundThread):
    """Matches photos on a worker thread, one result per photo.

    Args:
        pipeline: the pipeline to match with.
        paths: the photos, in the order to show them.

    Signals:
        photoReady(int): the result for ``paths[i]`` is in :attr:`results`.
        photoFailed(int, str): ``paths[i]`` could not be used; the text is for the user.
        finished(): every photo was tried (or the job was stopped).
    """

    photoReady = Signal(int)
    photoFailed = Signal(int, str)

    def __init__(self, pipeline: Pipeline, paths: Sequence[Path]) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.paths = [Path(p) for p in paths]
        self.results: dict[int, FrameResult] = {}

    def run(self) -> None:
        for i, path in enumerate(self.paths):
            if self._stop.is_set():
                return
            t0 = time.perf_counter()
            try:
                rgb = load_image(path)
                result = self.pipeline.match_image(rgb, still=True)
            except FaceappError as exc:  # one bad photo does not end a folder
                self.photoFailed.emit(i, for_gui(exc))
                continue
            self.results[i] = FrameResult(rgb, result.faces, (time.perf_counter() - t0) * 1e3, 0.0, path.name)
            self.photoReady.emit(i)
