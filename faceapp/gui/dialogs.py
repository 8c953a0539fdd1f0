"""Enrolment and settings dialogs."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from faceapp.config import PRECISIONS, PROVIDERS, Settings
from faceapp.errors import FaceappError
from faceapp.gui.messages import for_gui
from faceapp.gui.widgets import COLOURS, IMAGE_FILTER, VideoView, error_box, to_pixmap
from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import EnrolmentGuide
from faceapp.types import Decision, Face

log = logging.getLogger(__name__)
__all__ = ["EnrolDialog", "SettingsDialog", "error_box"]


class EnrolDialog(QDialog):
    """Add a person: a name, then samples from the live view (guided) or from image files."""

    def __init__(self, pipeline: Pipeline, parent: QWidget | None = None, target: int = 5) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add person")
        self.pipeline = pipeline
        self.guide = EnrolmentGuide(target=target)
        self.saved_as: str | None = None
        self.name = QLineEdit()
        self.name.setPlaceholderText("Name")
        self.guidance = QLabel("Look at the camera")
        self.guidance.setObjectName("guidance")
        self.guidance.setWordWrap(True)
        font = self.guidance.font()
        font.setPointSize(14)
        self.guidance.setFont(font)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m samples")
        self.preview = VideoView()
        self.preview.setMinimumSize(320, 240)
        self.preview.show_message("waiting for the camera ...")
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(96, 96))
        self.thumbs.setFixedHeight(130)
        discard = QPushButton("Discard selected")
        discard.clicked.connect(self.discard_selected)
        self.from_files = QPushButton("Add photos...")
        self.from_files.clicked.connect(self.add_files_dialog)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(discard)
        row.addWidget(self.from_files)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.name)
        lay.addWidget(self.preview, 1)
        lay.addWidget(self.guidance)
        lay.addWidget(self.progress)
        lay.addWidget(self.thumbs)
        lay.addLayout(row)
        lay.addWidget(self.buttons)
        self.camera_ok = True
        self._refresh()

    # Frames arrive from the main window's worker.
    def offer(self, frame: np.ndarray, faces: list[Face]) -> None:
        """One live frame: maybe a sample; the face box says what to do (green only when taken)."""
        self.camera_ok = True
        verdict = self.guide.offer(faces)
        self.guidance.setText(verdict.message)
        boxes = []
        for f in faces:
            if verdict.accepted and f is verdict.face:
                boxes.append((f.detection.box, "sample taken", COLOURS[Decision.MATCH]))
            else:
                text = verdict.message if f is verdict.face else "only one person, please"
                boxes.append((f.detection.box, text, COLOURS[Decision.UNCERTAIN]))
        self.preview.show_boxes(frame, boxes)
        if verdict.accepted:
            self._refresh()

    def no_camera(self, message: str) -> None:
        """The live view has no frames: say so, and point to photos instead of a black preview."""
        self.camera_ok = False
        self.preview.show_message(f"{message}\n\nNo live view: add photos of this person instead.")
        self.guidance.setText("No camera: use \"Add photos...\" to enrol from photo files")
        self.from_files.setDefault(True)

    def add_files(self, paths: list[Path]) -> list[str]:
        problems = []
        for p in paths:
            try:
                self.guide.samples.append(self.pipeline.main_face(Path(p)))
            except FaceappError as exc:
                problems.append(for_gui(exc))
        self._refresh()
        return problems

    def add_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Photos of this person", "", IMAGE_FILTER)
        problems = self.add_files([Path(f) for f in files])
        if problems:
            QMessageBox.warning(self, "Some photos were not used", "\n".join(problems))

    def discard_selected(self) -> None:
        rows = sorted((self.thumbs.row(i) for i in self.thumbs.selectedItems()), reverse=True)
        for r in rows:
            self.guide.discard(r)
        self._refresh()

    def _refresh(self) -> None:
        self.thumbs.clear()
        for i, f in enumerate(self.guide.samples):
            self.thumbs.addItem(QListWidgetItem(QIcon(to_pixmap(f.crop)), f"{i + 1}"))
        taken, target = self.guide.progress
        self.progress.setRange(0, max(target, taken))
        self.progress.setValue(taken)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(bool(self.guide.samples))

    def save(self, ask: Any = None) -> None:
        """Store the samples; ``ask(title, text) -> QMessageBox.StandardButton`` is for tests."""
        ask = ask or (lambda title, text: QMessageBox.question(
            self, title, text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No | QMessageBox.StandardButton.Cancel))
        name = self.name.text().strip()
        if not name:
            QMessageBox.information(self, "faceapp", "Type the person's name first.")
            return
        faces = list(self.guide.samples)
        target, add = name, False
        try:
            gallery = self.pipeline.gallery
            if gallery.has_person(name):
                answer = ask("Name exists", f"'{name}' is already enrolled. Add these samples to them?")
                if answer != QMessageBox.StandardButton.Yes:
                    return
                add = True
            else:
                similar = self.pipeline.lookalikes(faces, exclude=name)
                if similar:
                    other, sim = similar[0]
                    answer = ask("Looks like someone enrolled",
                                 f"These samples match '{other}' (similarity {sim:.2f}).\n"
                                 f"Add them to '{other}' instead of creating '{name}'?")
                    if answer == QMessageBox.StandardButton.Cancel:
                        return
                    if answer == QMessageBox.StandardButton.Yes:
                        target, add = other, True
            self.pipeline.enroll(target, faces, sources=["camera"] * len(faces), add=add)
        except FaceappError as exc:
            error_box(self, exc)
            return
        self.saved_as = target
        self.accept()


class SettingsDialog(QDialog):
    """Model file, provider, gallery folder and the unknown-faces inbox.

    Only the values the user changes here are returned by :meth:`changes`; the window
    checks them (loads the model, opens the gallery) before anything is saved.
    """

    def __init__(self, settings: Settings, pipeline: Pipeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._base = settings
        self.model = QLineEdit(str(settings.model or ""))
        self.model.setPlaceholderText("bundled model (SFace fused with a second network)")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        self.provider = QComboBox()
        self.provider.addItems(list(PROVIDERS))
        self.provider.setCurrentText(settings.provider)
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setCurrentText(settings.precision)
        self.precision.setToolTip("int8: about twice as fast on OpenVINO, embeddings within a cosine of 0.99 of fp32")
        self.gallery = QLineEdit(str(settings.gallery or ""))
        self.gallery.setPlaceholderText(str(settings.gallery_dir()))
        self.inbox = QCheckBox("Collect faces the live view cannot name (unknown-faces inbox)")
        self.inbox.setChecked(settings.inbox)
        self.retention = QSpinBox()
        self.retention.setRange(1, 3650)
        self.retention.setSuffix(" days")
        self.retention.setValue(settings.inbox_retention_days)
        try:
            f = pipeline.embedder_file
            prov = pipeline.embedder.provenance.get("name", f.source)
            info = f"in use: {f.path.name}\nsha256 {f.sha256}\n{prov}\nprovider in use: {pipeline.embedder.provider_note}"
        except FaceappError as exc:
            info = f"model problem: {for_gui(exc)}"
        self.info = QLabel(info)
        self.info.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Model file", model_row)
        form.addRow("", self.info)
        form.addRow("Provider", self.provider)
        form.addRow("Precision", self.precision)
        form.addRow("Gallery folder", self.gallery)
        form.addRow(self.inbox)
        form.addRow("Keep unknown faces for", self.retention)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)

    def _browse_model(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Embedder model", "", "Embedder models (*.onnx *.json)")
        if f:
            self.model.setText(f)

    def changes(self) -> dict[str, Any]:
        """The settings the user changed in this dialog (name -> new value)."""
        new = dataclasses.replace(
            self._base,
            model=Path(self.model.text().strip()).expanduser() if self.model.text().strip() else None,
            provider=self.provider.currentText(), precision=self.precision.currentText(),
            gallery=Path(self.gallery.text().strip()).expanduser() if self.gallery.text().strip() else None,
            inbox=self.inbox.isChecked(), inbox_retention_days=self.retention.value(),
        )
        return {f.name: getattr(new, f.name) for f in dataclasses.fields(Settings)
                if getattr(new, f.name) != getattr(self._base, f.name)}
