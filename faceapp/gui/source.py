"""The source box of the main window: camera, video file or photo folder, and Pause."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QWidget

from faceapp.vision.capture import VIDEO_SUFFIXES, list_cameras

RESOLUTIONS = ["640x480", "1280x720", "1920x1080", "320x240"]
VIDEO_FILTER = "Videos (" + " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES)) + ")"


def is_camera(spec: str | None) -> bool:
    """Whether a source spec names a camera (``None``: the settings' camera)."""
    return spec is None or spec.isdigit()


class SourcePanel(QGroupBox):
    """Picks what the live view shows.

    Args:
        camera_index: the saved default camera, selected at first.
        resolution: the saved capture size, ``"WxH"``.

    Signals:
        cameraChosen(int, int, int): a camera index with the width and height asked for.
        sourceChosen(str): a video file or photo folder.
        snapshotRequested(): "Snapshot...".
    """

    cameraChosen = Signal(int, int, int)
    sourceChosen = Signal(str)
    snapshotRequested = Signal()

    def __init__(self, camera_index: int, resolution: str, parent: QWidget | None = None) -> None:
        super().__init__("Source", parent)
        self.picker = QComboBox()
        self._fill(camera_index)
        self.resolution = QComboBox()
        self.resolution.addItems(RESOLUTIONS)
        self.resolution.setCurrentText(resolution)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open_picked)
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.toggled.connect(lambda paused: self.pause.setText("Resume" if paused else "Pause"))
        snapshot = QPushButton("Snapshot...")
        snapshot.clicked.connect(self.snapshotRequested)
        self.name = QLabel()
        self.name.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Source", self.picker)
        form.addRow("Resolution", self.resolution)
        form.addRow("Now", self.name)
        row = QHBoxLayout()
        for b in (self.open_button, self.pause, snapshot):
            row.addWidget(b)
        form.addRow(row)

    def _fill(self, camera_index: int) -> None:
        self.picker.clear()
        for cam in list_cameras():
            self.picker.addItem(f"{cam.name} (camera {cam.index})", str(cam.index))
        if self.picker.count() == 0:
            self.picker.addItem("Camera 0 (none found)", "0")
        self.picker.addItem("Video file...", "video")
        self.picker.addItem("Photo folder...", "folder")
        i = self.picker.findData(str(camera_index))
        if i >= 0:
            self.picker.setCurrentIndex(i)

    def open_picked(self) -> None:
        kind = self.picker.currentData()
        if kind == "video":
            self.choose_video()
        elif kind == "folder":
            self.choose_folder()
        elif kind.isdigit():
            w, h = (int(x) for x in self.resolution.currentText().split("x"))
            self.cameraChosen.emit(int(kind), w, h)
        else:
            self.sourceChosen.emit(kind)

    def choose_video(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Play a video file", "", VIDEO_FILTER)
        if f:
            self.sourceChosen.emit(f)

    def choose_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Use a folder of photos as the source")
        if d:
            self.sourceChosen.emit(d)

    def opened(self, name: str, spec: str | None) -> None:
        """The live view opened ``name``; a file or folder is shown (and re-openable) in the picker."""
        self.name.setText(name)
        if spec is not None and not spec.isdigit():
            i = self.picker.findData(spec)
            if i < 0:
                self.picker.insertItem(0, f"{Path(spec).name} ({'folder' if Path(spec).is_dir() else 'video'})", spec)
                i = 0
            self.picker.setCurrentIndex(i)
