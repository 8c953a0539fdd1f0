"""Photo mode: photos matched on a worker thread, kept on screen until "Back to live"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from faceapp.gui.widgets import IMAGE_FILTER, error_box
from faceapp.gui.worker import FrameResult, PhotoJob
from faceapp.pipeline import Pipeline
from faceapp.vision.images import IMAGE_SUFFIXES


class PhotoMode(QObject):
    """The photo-mode controller beside the main window: its bar (label, Previous, Next,
    Back to live), the background job and the results, one per photo.

    The window draws what this asks for and pauses or resumes the live view when photo mode
    starts and ends.

    Args:
        pipeline: gives the pipeline in use when a job starts (the window may swap it).
        parent: the owning widget.

    Signals:
        started(): photo mode began; the live view should pause.
        ended(): "Back to live"; the live view may resume.
        frameShown(object): draw this :class:`~faceapp.gui.worker.FrameResult`.
        messageShown(str): show this text instead of a frame.
        busyChanged(bool): photos are being matched.
    """

    started = Signal()
    ended = Signal()
    frameShown = Signal(object)
    messageShown = Signal(str)
    busyChanged = Signal(bool)

    def __init__(self, pipeline: Callable[[], Pipeline], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pipeline = pipeline
        self._parent = parent
        self.job: PhotoJob | None = None
        self.results: list[FrameResult | str | None] = []
        self.index = 0
        self.bar = QFrame()
        self.label = QLabel()
        self.previous_button = QPushButton("< Previous")
        self.previous_button.clicked.connect(lambda: self.show(self.index - 1))
        self.next_button = QPushButton("Next >")
        self.next_button.clicked.connect(lambda: self.show(self.index + 1))
        self.back_button = QPushButton("Back to live")
        self.back_button.clicked.connect(self.stop)
        row = QHBoxLayout(self.bar)
        row.addWidget(self.label, 1)
        for b in (self.previous_button, self.next_button, self.back_button):
            row.addWidget(b)
        self.bar.setVisible(False)

    @property
    def active(self) -> bool:
        return self.job is not None

    @staticmethod
    def photos_in(paths: list[Path]) -> list[Path]:
        """The photos to match: the paths given, or a single folder's images in name order."""
        paths = [Path(p) for p in paths]
        if len(paths) == 1 and paths[0].is_dir():
            return sorted(p for p in paths[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return paths

    def match(self, paths: list[Path]) -> None:
        """Match photos, or a single folder's photos, in the background; the results stay until
        "Back to live"."""
        photos = self.photos_in(paths)
        if not photos:
            error_box(self._parent, "there are no photos to match in that folder")
            return
        self.start(photos)

    def match_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self._parent, "Match photos", "", IMAGE_FILTER)
        if files:
            self.match([Path(f) for f in files])

    def start(self, paths: list[Path]) -> None:
        """Match ``paths`` (non-empty) in the background; earlier results are dropped."""
        if self.job is not None:
            self.job.stop()
        self.results = [None] * len(paths)
        self.index = 0
        self.bar.setVisible(True)
        self.started.emit()
        self.busyChanged.emit(True)
        self.messageShown.emit(f"matching {paths[0].name} ...")
        job = PhotoJob(self._pipeline(), paths)
        job.photoReady.connect(self._on_photo)
        job.photoFailed.connect(self._on_photo_failed)
        job.finished.connect(self._on_done)
        job.failed.connect(self._on_failed)
        self.job = job
        self._show_label()
        job.start()

    def stop(self) -> None:
        """Back to live: stop matching and forget the results."""
        if self.job is not None:
            self.job.stop()
            self.job = None
        self.results = []
        self.bar.setVisible(False)
        self.busyChanged.emit(False)
        self.ended.emit()

    def show(self, i: int) -> None:
        """Show photo ``i``'s result (a frame, why it was not usable, or that it is still matched)."""
        if not self.results or not 0 <= i < len(self.results):
            return
        self.index = i
        item = self.results[i]
        if isinstance(item, FrameResult):
            self.frameShown.emit(item)
        else:
            self.messageShown.emit(item if isinstance(item, str) else "matching ...")
        self._show_label()

    def _on_photo(self, i: int) -> None:
        if self.job is None or self.sender() is not self.job:
            return
        self._arrived(i, self.job.results[i])

    def _on_photo_failed(self, i: int, message: str) -> None:
        if self.sender() is self.job:
            self._arrived(i, message)

    def _arrived(self, i: int, item: FrameResult | str) -> None:
        self.results[i] = item
        if i == self.index:
            self.show(i)
        self._show_label()

    def _on_done(self) -> None:
        if self.sender() is self.job:
            self.busyChanged.emit(False)
            self._show_label()

    def _on_failed(self, message: str) -> None:
        if self.sender() is self.job:
            self.busyChanged.emit(False)
            self.messageShown.emit(f"{message}\n\nPress Back to live, or match other photos.")

    def _show_label(self) -> None:
        if self.job is None:
            return
        n = len(self.results)
        done = sum(p is not None for p in self.results)
        item = self.results[self.index] if self.results else None
        name = self.job.paths[self.index].name if n else ""
        if isinstance(item, FrameResult):
            k = len(item.faces)
            what = f"{k} face(s)" if k else "no face found"
        elif isinstance(item, str):
            what = "not usable"
        else:
            what = "matching ..."
        progress = "" if done == n else f" (matched {done} of {n})"
        self.label.setText(f"Photo {self.index + 1} of {n}: {name}: {what}{progress}")
        self.previous_button.setEnabled(self.index > 0)
        self.next_button.setEnabled(self.index < n - 1)
