"""Enrolment and settings dialogs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Signal
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
from faceapp.recognise.enrol import Enrolment, EnrolmentGuide, EnrolmentResult, EnrolSample, Provenance, Refusal
from faceapp.types import Decision, Face
from faceapp.vision.images import decode_crop

log = logging.getLogger(__name__)
__all__ = ["EnrolChoices", "EnrolDialog", "SettingsDialog", "ask_user", "error_box", "face_strip"]


Ask = Callable[[str, str], QMessageBox.StandardButton]


def face_strip(crops: Sequence[np.ndarray | bytes | None]) -> np.ndarray | None:
    """Face crops side by side.

    Args:
        crops: aligned crops as ``(112, 112, 3)`` RGB uint8 arrays or stored JPEGs; ``None``
            entries are left out.

    Returns:
        One ``(112, 112 * n, 3)`` RGB uint8 strip; ``None`` when there is nothing to show.
    """
    faces = [c if isinstance(c, np.ndarray) else decode_crop(c) for c in crops if c is not None and len(c)]
    return np.ascontiguousarray(np.hstack(faces)) if faces else None


def faces_beside(enrolled: bytes | None, samples: Sequence[EnrolSample]) -> np.ndarray | None:
    """The enrolled person's stored face beside the new samples that match them.

    Args:
        enrolled: their stored face crop (JPEG), or ``None``.
        samples: the new samples to show (aligned crops as arrays or JPEGs).

    Returns:
        One ``(112, 112 * n, 3)`` RGB uint8 strip, the enrolled face first; ``None`` when there
        is nothing to show.
    """
    return face_strip([enrolled, *(s.crop for s in samples[:4])])


def ask_user(parent: QWidget, ask: Ask | None, title: str, text: str,
             buttons: dict[QMessageBox.StandardButton, str], faces: np.ndarray | None = None) -> QMessageBox.StandardButton:
    """A question with labelled buttons (Cancel by default) and faces shown beside it.

    Args:
        parent: the window the question belongs to.
        ask: answers instead of the message box (tests), see :class:`EnrolChoices`.
        title: the box's title.
        text: the question.
        buttons: the answers besides Cancel, with their labels.
        faces: an RGB strip of faces to show, or ``None``.

    Returns:
        The answer's button.
    """
    if ask is not None:
        return ask(title, text)
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent)
    for button, label in buttons.items():
        box.addButton(button).setText(label)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    if faces is not None:
        box.setIconPixmap(to_pixmap(faces))
    box.exec()
    return box.standardButton(box.clickedButton())


class EnrolChoices:
    """Enrols through the core's use case, asking the user where its rules need a choice.

    The name is taken: add the samples to that person? The samples match someone enrolled
    under another name: add them to that person, or save them under the new name because it
    is someone else (an explicit button, never the answer "No"), or nothing is saved.
    Refused samples raise the use case's error, which the caller shows.

    Args:
        parent: the window the questions belong to.
        ask: ``ask(title, text) -> QMessageBox.StandardButton`` answers the questions instead
            of a message box (tests): ``Yes`` adds to the person named in the question,
            ``Save`` saves under the new name despite a match; anything else saves nothing.
    """

    def __init__(self, parent: QWidget, ask: Ask | None = None) -> None:
        self.parent = parent
        self.ask = ask
        self.faces: np.ndarray | None = None  # shown with the last look-alike question

    def _question(self, title: str, text: str, buttons: dict[QMessageBox.StandardButton, str]) -> QMessageBox.StandardButton:
        return ask_user(self.parent, self.ask, title, text, buttons, self.faces)

    def enrol(self, enrolment: Enrolment, name: str, samples: Sequence[EnrolSample], *,
              add: bool = False) -> EnrolmentResult | None:
        """Review, ask what the review needs, and store; ``None`` when the user chose not to.

        Raises:
            FaceappError: the use case refused the samples, or the gallery failed.
        """
        review = enrolment.review(name, samples, add=add)
        if review.duplicate_name:
            yes = QMessageBox.StandardButton.Yes
            if self._question("Name exists", f"'{review.name}' is already enrolled. Add these samples to them?",
                              {yes: f"Add to {review.name}"}) != yes:
                return None
            return self.enrol(enrolment, review.name, samples, add=True)
        despite_match = False
        if review.lookalikes and not review.refused:
            top = review.lookalikes[0]
            self.faces = faces_beside(top.face, [review.accepted[i] for i in top.samples])
            also = f" (also: {', '.join(lk.name for lk in review.lookalikes[1:])})" if len(review.lookalikes) > 1 else ""
            answer = self._question(
                "Looks like someone enrolled",
                f"These samples match '{top.name}' (similarity {top.similarity:.2f}){also}, shown beside them.\n"
                f"Add them to '{top.name}'? Save them as '{review.name}' only if that is someone else.",
                {QMessageBox.StandardButton.Yes: f"Add to {top.name}",
                 QMessageBox.StandardButton.Save: f"Save as {review.name}, someone else"})
            if answer == QMessageBox.StandardButton.Yes:
                return self.enrol(enrolment, top.name, samples, add=True)
            if answer != QMessageBox.StandardButton.Save:
                return None
            despite_match = True
        return enrolment.enrol(review.name, samples, add=review.add, despite_match=despite_match)


class EnrolDialog(QDialog):
    """Add a person: a name, then samples from one source: the live view (guided, once asked
    for) or photo files. Each sample shows where it came from.

    Signals:
        captureChanged(bool): live capture was started or stopped (the window embeds every
            face of every frame only while it runs).
    """

    captureChanged = Signal(bool)

    def __init__(self, pipeline: Pipeline, parent: QWidget | None = None, target: int = 5) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add person")
        self.pipeline = pipeline
        self.enrolment = pipeline.enrolment()
        self.samples = self.enrolment.sample_set()
        self.guide = EnrolmentGuide(self.samples, target=target)
        self.saved_as: str | None = None
        self.frames_seen = 0
        self.name = QLineEdit()
        self.name.setPlaceholderText("Name")
        self.guidance = QLabel(IDLE)
        self.guidance.setObjectName("guidance")
        self.guidance.setWordWrap(True)
        font = self.guidance.font()
        font.setPointSize(14)
        self.guidance.setFont(font)
        # room for two wrapped lines, so a long hint never runs over the preview above it
        self.guidance.setMinimumHeight(2 * self.guidance.fontMetrics().lineSpacing() + 4)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m samples")
        self.coverage = QLabel()  # which poses the samples cover, which are missing
        self.preview = VideoView()
        self.preview.setMinimumSize(320, 240)
        self.preview.show_message("waiting for the camera ...")
        self.match_view = QLabel()
        self.match_view.setVisible(False)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(96, 96))
        self.thumbs.setFixedHeight(150)
        self.thumbs.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.capture = QPushButton(START)
        self.capture.setCheckable(True)
        self.capture.toggled.connect(self._capture_toggled)
        self.skip = QPushButton("Skip this pose")
        self.skip.setToolTip("Stop asking for the pose asked for now (the samples will not cover it)")
        self.skip.clicked.connect(self.skip_pose)
        discard = QPushButton("Discard selected")
        discard.clicked.connect(self.discard_selected)
        self.from_files = QPushButton("Add photos...")
        self.from_files.clicked.connect(self.add_files_dialog)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.capture)
        row.addWidget(self.skip)
        row.addWidget(self.from_files)
        row.addWidget(discard)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.name)
        lay.addWidget(self.preview, 1)
        lay.addWidget(self.guidance)
        lay.addWidget(self.progress)
        lay.addWidget(self.coverage)
        lay.addWidget(self.thumbs)
        lay.addWidget(self.match_view)
        lay.addLayout(row)
        lay.addWidget(self.buttons)
        self.camera_ok = True
        self._refresh()

    @property
    def capturing(self) -> bool:
        """Live capture is on (the user asked for it)."""
        return self.capture.isChecked()

    def _capture_toggled(self, on: bool) -> None:
        self.capture.setText(STOP if on else START)
        self.guidance.setText(self.guide.wanted_pose()[2] if on else IDLE)
        self.captureChanged.emit(on)

    def skip_pose(self) -> None:
        """Stop asking for the pose asked for now, and say what is asked for next."""
        skipped = self.guide.skip_pose()
        if skipped is not None:
            left = self.guide.missing_poses()
            nxt = left[0][2] if left else "any pose: keep moving a little"
            self.guidance.setText(f"{skipped} pose skipped; next: {nxt}")
        self._refresh()

    # Frames arrive from the main window's worker.
    def offer(self, frame: np.ndarray, faces: list[Face], source: str = "") -> None:
        """One live frame: shown always, a sample only while capturing (the face box says what
        to do, green only when a sample is taken).

        Args:
            frame: ``(H, W, 3)`` RGB uint8.
            faces: its faces (embedded while capturing).
            source: the live source's name (a camera, a video file).
        """
        self.camera_ok = True
        self.frames_seen += 1
        if not self.capturing:
            self.preview.show_boxes(frame, [(f.detection.box, "", COLOURS[Decision.UNCERTAIN]) for f in faces])
            return
        if any(f.embedding is None for f in faces):  # the first frame after capture was asked for
            self.preview.show_boxes(frame, [(f.detection.box, "", COLOURS[Decision.UNCERTAIN]) for f in faces])
            return
        verdict = self.guide.offer(faces, Provenance.live(source, self.frames_seen))
        if verdict.refused is not None and verdict.refused.reason is Refusal.OTHER_SOURCE:
            self.capture.setChecked(False)  # every frame would be refused the same way
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
            if self.guide.done:
                self.capture.setChecked(False)
                self.guidance.setText(verdict.message)

    def no_camera(self, message: str) -> None:
        """The live view has no frames: say so, and point to photos instead of a black preview."""
        self.camera_ok = False
        self.preview.show_message(f"{message}\n\nNo live view: add photos of this person instead.")
        self.guidance.setText("No camera: use \"Add photos...\" to enrol from photo files")
        self.from_files.setDefault(True)

    def add_files(self, paths: list[Path]) -> list[str]:
        """Add the main face of each photo as a sample; returns why some were not used."""
        problems = []
        for p in paths:
            try:
                sample = EnrolSample.from_face(self.pipeline.main_face(Path(p)), Provenance.photo(Path(p).name))
            except FaceappError as exc:
                problems.append(for_gui(exc))
                continue
            refused = self.samples.add(sample)
            if refused is not None:
                problems.append(refused.message)
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
            self.samples.discard(r)
        self._refresh()

    def _refresh(self) -> None:
        self.thumbs.clear()
        for i, s in enumerate(self.samples):
            icon = QIcon(to_pixmap(s.crop)) if isinstance(s.crop, np.ndarray) else QIcon()
            item = QListWidgetItem(icon, f"{i + 1}: {s.provenance.item or s.provenance.label}")
            item.setToolTip(s.provenance.label)
            self.thumbs.addItem(item)
        taken, target = self.guide.progress
        self.progress.setRange(0, max(target, taken))
        self.progress.setValue(taken)
        self.coverage.setText(self.guide.coverage() if len(self.samples) or self.guide.skipped else "")
        self.skip.setEnabled(bool(self.guide.missing_poses()) and not self.guide.done)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(bool(len(self.samples)))

    def save(self, ask: Ask | None = None) -> None:
        """Store the samples through the enrolment use case, asking what its rules need.

        Args:
            ask: answers the questions instead of message boxes (tests; see :class:`EnrolChoices`).
        """
        name = self.name.text().strip()
        if not name:
            QMessageBox.information(self, "faceapp", "Type the person's name first.")
            return
        choices = EnrolChoices(self, ask)
        try:
            done = choices.enrol(self.enrolment, name, list(self.samples))
        except FaceappError as exc:
            error_box(self, exc)
            return
        finally:
            self._show_match(choices.faces)
        if done is None:
            self.guidance.setText("Not saved: choose who these samples are, or discard them")
            return
        self.saved_as = done.person.name
        self.accept()

    def _show_match(self, faces: np.ndarray | None) -> None:
        """The enrolled look-alike's face beside the samples, while the question is open and after."""
        if faces is not None:
            self.match_view.setPixmap(to_pixmap(faces))
        self.match_view.setVisible(faces is not None)


IDLE = 'Type the name, then press "Capture from the live view" or "Add photos..."'
START, STOP = "Capture from the live view", "Stop capture"


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
