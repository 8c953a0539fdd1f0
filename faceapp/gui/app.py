"""The main window and the ``faceapp`` entry point."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..capture import FrameSource, open_source
from ..config import Settings, load_settings, save_settings
from ..errors import FaceappError
from ..pipeline import Pipeline
from .dialogs import EnrolDialog, GalleryDialog, SettingsDialog, error_box
from .widgets import VideoView
from .worker import FrameResult, ProcessingWorker

log = logging.getLogger(__name__)
RESOLUTIONS = ["640x480", "1280x720", "1920x1080", "320x240"]


class MainWindow(QMainWindow):
    """Live matching view, threshold controls, and the way into enrolment, gallery and settings.

    Args:
        settings: what the CLI also reads.
        source: camera index, video file or image folder; ``None`` = the settings' camera.
        settings_path: where changed settings are saved (``None`` = the default file).
    """

    def __init__(self, settings: Settings, source: str | None = None, settings_path: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("faceapp")
        self.resize(1100, 680)
        self.settings = settings
        self.settings_path = settings_path
        self.source_spec = source
        self.pipeline = Pipeline(settings)
        self.worker: ProcessingWorker | None = None
        self.enrol_dialog: EnrolDialog | None = None
        self.last: FrameResult | None = None
        self._build()
        self._load_models()
        QTimer.singleShot(0, self.start_source)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.view = VideoView()
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold_label = QLabel()
        self.band = QDoubleSpinBox()
        self.band.setRange(0.0, 0.5)
        self.band.setSingleStep(0.01)
        self.min_face = QSpinBox()
        self.min_face.setRange(0, 500)
        self.min_face.setSuffix(" px")
        self.confidence = QDoubleSpinBox()
        self.confidence.setRange(0.05, 1.0)
        self.confidence.setSingleStep(0.05)
        reset = QPushButton("Reset to model defaults")
        reset.clicked.connect(self.reset_thresholds)
        self.threshold.valueChanged.connect(self._thresholds_changed)
        self.threshold.sliderReleased.connect(self._save)
        for w in (self.band, self.min_face, self.confidence):
            w.valueChanged.connect(self._thresholds_changed)
            w.editingFinished.connect(self._save)
        tform = QFormLayout()
        tform.addRow("Match threshold", self.threshold)
        tform.addRow("", self.threshold_label)
        tform.addRow("Uncertain band", self.band)
        tform.addRow("Min face size", self.min_face)
        tform.addRow("Detection confidence", self.confidence)
        tform.addRow(reset)
        tbox = QGroupBox("Thresholds")
        tbox.setLayout(tform)

        self.camera_index = QSpinBox()
        self.camera_index.setRange(0, 16)
        self.camera_index.setValue(self.settings.camera_index)
        self.resolution = QComboBox()
        self.resolution.addItems(RESOLUTIONS)
        self.resolution.setCurrentText(f"{self.settings.camera_width}x{self.settings.camera_height}")
        self.open_camera = QPushButton("Open camera")
        self.open_camera.clicked.connect(self.use_camera)
        self.retry = QPushButton("Retry")
        self.retry.clicked.connect(self.start_source)
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.toggled.connect(self.set_paused)
        snapshot = QPushButton("Snapshot...")
        snapshot.clicked.connect(self.snapshot_dialog)
        cform = QFormLayout()
        cform.addRow("Camera", self.camera_index)
        cform.addRow("Resolution", self.resolution)
        row = QHBoxLayout()
        for b in (self.open_camera, self.retry):
            row.addWidget(b)
        cform.addRow(row)
        row2 = QHBoxLayout()
        row2.addWidget(self.pause)
        row2.addWidget(snapshot)
        cform.addRow(row2)
        cbox = QGroupBox("Source")
        cbox.setLayout(cform)

        actions = QVBoxLayout()
        for text, slot in (("Match a photo...", self.match_photo_dialog), ("Add person...", self.open_enrolment),
                           ("Gallery...", self.open_gallery), ("Settings...", self.open_settings)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            actions.addWidget(b)
        side = QVBoxLayout()
        side.addWidget(cbox)
        side.addWidget(tbox)
        side.addLayout(actions)
        side.addStretch(1)
        panel = QWidget()
        panel.setLayout(side)
        panel.setFixedWidth(330)
        central = QWidget()
        lay = QHBoxLayout(central)
        lay.addWidget(self.view, 1)
        lay.addWidget(panel)
        self.setCentralWidget(central)
        self.fps_label = QLabel("-- fps")
        self.latency_label = QLabel("-- ms")
        self.provider_label = QLabel("provider: --")
        self.gallery_label = QLabel("gallery: --")
        for label in (self.fps_label, self.latency_label, self.provider_label, self.gallery_label):
            self.statusBar().addPermanentWidget(label)

    def _load_models(self) -> None:
        try:
            emb = self.pipeline.embedder
            self.provider_label.setText(f"runtime: {emb.runtime_name}")
            self.provider_label.setToolTip(emb.provider_note)
            self._sync_controls()
            self.refresh_gallery_size()
        except FaceappError as exc:
            self.view.show_message(str(exc))
            QTimer.singleShot(0, lambda e=exc: error_box(self, e))

    def _sync_controls(self) -> None:
        thr = self.pipeline.thresholds()
        widgets = (self.threshold, self.band, self.min_face, self.confidence)
        for w in widgets:
            w.blockSignals(True)
        self.threshold.setValue(round(thr.match * 100))
        self.band.setValue(thr.uncertain_band)
        self.min_face.setValue(int(self.settings.min_face_size))
        self.confidence.setValue(self.settings.min_detection_confidence)
        for w in widgets:
            w.blockSignals(False)
        self._show_threshold(thr.match)

    def _show_threshold(self, value: float) -> None:
        self.threshold_label.setText(f"{value:.2f} (model default {self.pipeline.embedder.thresholds.match:.2f})")

    # ------------------------------------------------------------------ thresholds
    def _thresholds_changed(self) -> None:
        self.settings = dataclasses.replace(
            self.settings, threshold=self.threshold.value() / 100.0, uncertain_band=float(self.band.value()),
            min_face_size=float(self.min_face.value()), min_detection_confidence=float(self.confidence.value()),
        )
        self.pipeline.settings = self.settings  # the worker's next frame uses it
        self._show_threshold(self.threshold.value() / 100.0)

    def reset_thresholds(self) -> None:
        self.settings = dataclasses.replace(self.settings, threshold=None, uncertain_band=None,
                                            min_face_size=Settings.min_face_size,
                                            min_detection_confidence=Settings.min_detection_confidence)
        self.pipeline.settings = self.settings
        self._sync_controls()
        self._save()

    def _save(self) -> None:
        try:
            save_settings(self.settings, self.settings_path)
        except OSError as exc:
            self.statusBar().showMessage(f"settings not saved: {exc}", 5000)

    # ------------------------------------------------------------------ source
    def _make_source(self) -> FrameSource:
        spec = self.source_spec if self.source_spec is not None else str(self.settings.camera_index)
        return open_source(spec, self.settings.camera_width, self.settings.camera_height)

    def start_source(self) -> None:
        self.stop_source()
        self.view.show_message("starting ...")
        self.worker = ProcessingWorker(self.pipeline, self._make_source)
        self.worker.frameReady.connect(self._on_frame)
        self.worker.sourceFailed.connect(self._on_source_failed)
        self.worker.sourceOpened.connect(lambda name: self.statusBar().showMessage(f"source: {name}", 3000))
        self.worker.set_paused(self.pause.isChecked())
        self.worker.start()

    def stop_source(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def use_camera(self) -> None:
        w, h = (int(x) for x in self.resolution.currentText().split("x"))
        self.settings = dataclasses.replace(self.settings, camera_index=self.camera_index.value(),
                                            camera_width=w, camera_height=h)
        self.source_spec = None
        self._save()
        self.start_source()

    def set_paused(self, paused: bool) -> None:
        self.pause.setText("Resume" if paused else "Pause")
        if self.worker is not None:
            self.worker.set_paused(paused)

    def _on_frame(self) -> None:
        if self.worker is None:
            return
        item = self.worker.take()
        if item is None:
            return
        self.last = item
        self.view.show_frame(item.frame, item.result.faces)
        self.fps_label.setText(f"{item.fps:.1f} fps")
        self.latency_label.setText(f"{item.latency_ms:.0f} ms/frame")
        if self.enrol_dialog is not None:
            self.enrol_dialog.offer(item.frame, [fr.face for fr in item.result.faces])

    def _on_source_failed(self, message: str) -> None:
        self.view.show_message(f"{message}\n\nMatching photos and the gallery still work. Press Retry to try again.")
        self.fps_label.setText("-- fps")
        self.statusBar().showMessage(message, 10000)

    # ------------------------------------------------------------------ actions
    def snapshot(self, path: Path) -> Path:
        if self.last is None:
            raise FaceappError("no frame to save yet")
        from PIL import Image

        Image.fromarray(self.last.frame).save(path)
        return path

    def snapshot_dialog(self) -> None:
        name = time.strftime("faceapp-%Y%m%d-%H%M%S.png")
        f, _ = QFileDialog.getSaveFileName(self, "Save snapshot", name, "PNG (*.png);;JPEG (*.jpg)")
        if f:
            try:
                self.snapshot(Path(f))
            except (FaceappError, OSError) as exc:
                error_box(self, exc)

    def match_photo(self, path: Path) -> None:
        """Show every face of a photo with its result (the live view pauses)."""
        result = self.pipeline.match_image(Path(path))
        from ..images import load_image

        self.pause.setChecked(True)
        self.view.show_frame(load_image(path), result.faces)
        n = len(result.faces)
        self.statusBar().showMessage(f"{Path(path).name}: {n} face(s)" if n else f"{Path(path).name}: no face found")

    def match_photo_dialog(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Match a photo", "", "Images (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff)")
        if f:
            try:
                self.match_photo(Path(f))
            except FaceappError as exc:
                error_box(self, exc)

    def open_enrolment(self) -> EnrolDialog:
        dlg = EnrolDialog(self.pipeline, self)
        self.enrol_dialog = dlg
        dlg.finished.connect(self._enrolment_closed)
        dlg.show()
        return dlg

    def _enrolment_closed(self) -> None:
        self.enrol_dialog = None
        self.refresh_gallery_size()

    def open_gallery(self) -> GalleryDialog:
        dlg = GalleryDialog(self.pipeline, self)
        dlg.finished.connect(self.refresh_gallery_size)
        dlg.show()
        return dlg

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.settings, self.pipeline, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dlg.result_settings())

    def apply_settings(self, settings: Settings) -> None:
        """Switch model, provider or gallery: a new pipeline, the source restarted."""
        self.stop_source()
        old = self.pipeline
        self.settings = settings
        self.pipeline = Pipeline(settings)
        old.close()
        self._save()
        self._load_models()
        self.start_source()

    def refresh_gallery_size(self) -> None:
        try:
            g = self.pipeline.gallery
            self.gallery_label.setText(f"gallery: {len(g)} people")
        except FaceappError as exc:
            self.gallery_label.setText("gallery: error")
            self.statusBar().showMessage(str(exc), 10000)

    def closeEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        self.stop_source()
        self.pipeline.close()
        super().closeEvent(event)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="faceapp", description="faceapp: live face matching from the webcam.")
    ap.add_argument("--source", help="camera index, video file or folder of images (default: the settings' camera)")
    ap.add_argument("--gallery", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--provider", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--config", type=Path, help="settings file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="faceapp: %(message)s")
    try:
        settings = load_settings(args.config).replace(gallery=args.gallery, model=args.model, provider=args.provider)
    except FaceappError as exc:
        print(f"faceapp: error: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow(settings, source=args.source, settings_path=args.config)
    win.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
