"""Enrolment, gallery manager and settings dialogs."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..config import PROVIDERS, Settings
from ..enrol import EnrolmentGuide
from ..errors import FaceappError
from ..pipeline import Pipeline, decode_thumbnail
from ..types import Decision, Face
from .widgets import COLOURS, VideoView, to_pixmap

log = logging.getLogger(__name__)
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff)"


def error_box(parent: QWidget | None, exc: Exception) -> None:
    QMessageBox.warning(parent, "faceapp", str(exc))


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
        font = self.guidance.font()
        font.setPointSize(14)
        self.guidance.setFont(font)
        self.preview = VideoView()
        self.preview.setMinimumSize(320, 240)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(96, 96))
        self.thumbs.setFixedHeight(130)
        discard = QPushButton("Discard selected")
        discard.clicked.connect(self.discard_selected)
        from_files = QPushButton("Add photos...")
        from_files.clicked.connect(self.add_files_dialog)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(discard)
        row.addWidget(from_files)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.name)
        lay.addWidget(self.preview, 1)
        lay.addWidget(self.guidance)
        lay.addWidget(self.thumbs)
        lay.addLayout(row)
        lay.addWidget(self.buttons)
        self._refresh()

    # Frames arrive from the main window's worker.
    def offer(self, frame, faces: list[Face]) -> None:  # type: ignore[no-untyped-def]
        verdict = self.guide.offer(faces)
        self.guidance.setText(verdict.message)
        boxes = []
        for f in faces:
            problem = self.guide.check(f)
            colour = COLOURS[Decision.MATCH] if problem is None else COLOURS[Decision.UNCERTAIN]
            boxes.append((f.detection.box, problem or "ok", colour))
        self.preview.show_boxes(frame, boxes)
        if verdict.accepted:
            self._refresh()

    def add_files(self, paths: list[Path]) -> list[str]:
        problems = []
        for p in paths:
            try:
                self.guide.samples.append(self.pipeline.main_face(Path(p)))
            except FaceappError as exc:
                problems.append(str(exc))
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
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(bool(self.guide.samples))

    def save(self, ask=None) -> None:  # type: ignore[no-untyped-def]
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


class GalleryDialog(QDialog):
    """People with a thumbnail, sample count and date; rename, delete, add samples, merge, search."""

    def __init__(self, pipeline: Pipeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Gallery")
        self.resize(520, 480)
        self.pipeline = pipeline
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by name")
        self.search.textChanged.connect(self.reload)
        self.people = QListWidget()
        self.people.setIconSize(QSize(64, 64))
        buttons = QHBoxLayout()
        for text, slot in (("Rename...", self.rename_dialog), ("Delete...", self.delete_dialog),
                           ("Add samples...", self.add_samples_dialog), ("Merge into...", self.merge_dialog)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.search)
        lay.addWidget(self.people, 1)
        lay.addLayout(buttons)
        lay.addWidget(close)
        self.reload()

    def reload(self) -> None:
        self.people.clear()
        try:
            persons = self.pipeline.gallery.list_persons(self.search.text() or None)
        except FaceappError as exc:
            error_box(self, exc)
            return
        for p in persons:
            when = dt.datetime.fromtimestamp(p.created_at).strftime("%Y-%m-%d")
            item = QListWidgetItem(f"{p.name}\n{p.templates} sample(s), enrolled {when}")
            item.setData(Qt.ItemDataRole.UserRole, p.name)
            thumbs = [t for _, _, t, _ in self.pipeline.gallery.templates(p.name) if t]
            if thumbs:
                item.setIcon(QIcon(to_pixmap(decode_thumbnail(thumbs[0]))))
            self.people.addItem(item)

    def names(self) -> list[str]:
        return [self.people.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.people.count())]

    def selected(self) -> str | None:
        item = self.people.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def rename(self, old: str, new: str) -> None:
        self.pipeline.gallery.rename(old, new)
        self.reload()

    def delete(self, name: str) -> None:
        self.pipeline.gallery.remove(name)
        self.reload()

    def merge(self, source: str, target: str) -> None:
        self.pipeline.gallery.merge(source, target)
        self.reload()

    def add_samples(self, name: str, paths: list[Path]) -> None:
        faces = [self.pipeline.main_face(Path(p)) for p in paths]
        self.pipeline.enroll(name, faces, sources=[Path(p).name for p in paths], add=True)
        self.reload()

    def _guarded(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args)
        except FaceappError as exc:
            error_box(self, exc)

    def rename_dialog(self) -> None:
        name = self.selected()
        if name:
            new, ok = QInputDialog.getText(self, "Rename", f"New name for {name}:", text=name)
            if ok and new.strip():
                self._guarded(self.rename, name, new)

    def delete_dialog(self) -> None:
        name = self.selected()
        if name and QMessageBox.question(
            self, "Delete", f"Delete {name} and all their samples? This cannot be undone."
        ) == QMessageBox.StandardButton.Yes:
            self._guarded(self.delete, name)

    def add_samples_dialog(self) -> None:
        name = self.selected()
        if name:
            files, _ = QFileDialog.getOpenFileNames(self, f"Photos of {name}", "", IMAGE_FILTER)
            if files:
                self._guarded(self.add_samples, name, [Path(f) for f in files])

    def merge_dialog(self) -> None:
        name = self.selected()
        others = [n for n in self.names() if n != name]
        if name and others:
            target, ok = QInputDialog.getItem(self, "Merge", f"Move all of {name}'s samples to:", others, 0, False)
            if ok:
                self._guarded(self.merge, name, target)


class SettingsDialog(QDialog):
    """Model file, provider, gallery location and camera defaults."""

    def __init__(self, settings: Settings, pipeline: Pipeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.model = QLineEdit(str(settings.model or ""))
        self.model.setPlaceholderText("bundled SFace model")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        self.provider = QComboBox()
        self.provider.addItems(list(PROVIDERS))
        self.provider.setCurrentText(settings.provider)
        self.gallery = QLineEdit(str(settings.gallery or ""))
        self.gallery.setPlaceholderText(str(settings.gallery_dir()))
        self.camera = QSpinBox()
        self.camera.setRange(0, 16)
        self.camera.setValue(settings.camera_index)
        self.width_ = QSpinBox()
        self.width_.setRange(160, 3840)
        self.width_.setValue(settings.camera_width)
        self.height_ = QSpinBox()
        self.height_.setRange(120, 2160)
        self.height_.setValue(settings.camera_height)
        try:
            f = pipeline.embedder_file
            prov = pipeline.embedder.provenance.get("name", f.source)
            info = f"in use: {f.path.name}\nsha256 {f.sha256}\n{prov}\nprovider in use: {pipeline.embedder.provider_note}"
        except FaceappError as exc:
            info = f"model problem: {exc}"
        self.info = QLabel(info)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Model file", model_row)
        form.addRow("", self.info)
        form.addRow("Provider", self.provider)
        form.addRow("Gallery folder", self.gallery)
        form.addRow("Camera", self.camera)
        form.addRow("Width", self.width_)
        form.addRow("Height", self.height_)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)
        self._base = settings

    def _browse_model(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Embedder model", "", "ONNX models (*.onnx)")
        if f:
            self.model.setText(f)

    def result_settings(self) -> Settings:
        import dataclasses

        return dataclasses.replace(
            self._base,
            model=Path(self.model.text()) if self.model.text().strip() else None,
            provider=self.provider.currentText(),
            gallery=Path(self.gallery.text()) if self.gallery.text().strip() else None,
            camera_index=self.camera.value(), camera_width=self.width_.value(), camera_height=self.height_.value(),
        )
