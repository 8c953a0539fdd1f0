"""One person's samples, with quality badges (:func:`faceapp.recognise.enrol.assess_sample`):
delete them or move them to someone else (:func:`faceapp.recognise.library.move_samples`)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QInputDialog, QLabel, QListWidget, QListWidgetItem, QMessageBox, QPushButton, QWidget

from faceapp.errors import FaceappError
from faceapp.gui.messages import for_gui
from faceapp.gui.tiles import LOW_QUALITY, tile_dialog_layout, tile_list, when
from faceapp.gui.widgets import error_box, thumb_icon
from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import assess_sample
from faceapp.recognise.library import move_samples


class SamplesDialog(QDialog):
    """One person's samples, each with quality badges; low-quality ones are flagged in red.

    Args:
        pipeline: whose gallery.
        name: the person.
    """

    def __init__(self, pipeline: Pipeline, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Samples of {name}")
        self.resize(720, 480)
        self.pipeline = pipeline
        self.name = name
        self.summary = QLabel()
        self.list = tile_list(170)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        delete = QPushButton("Delete selected samples")
        delete.clicked.connect(self.delete_selected_dialog)
        select_low = QPushButton("Select low-quality")
        select_low.clicked.connect(self.select_low_quality)
        move = QPushButton("Move to person...")
        move.setToolTip("These samples show someone else: move them to that person")
        move.clicked.connect(self.move_selected_dialog)
        tile_dialog_layout(self, self.summary, self.list, [select_low, move, delete])
        self.reload()

    def reload(self) -> None:
        self.list.clear()
        try:
            samples = self.pipeline.gallery.samples(self.name)
        except FaceappError as exc:
            self.summary.setText(for_gui(exc))
            return
        low = 0
        for s in samples:
            a = assess_sample(s.quality)
            low += a.low_quality
            text = " · ".join(a.badges)
            if a.low_quality:
                text += "\n⚠ " + "; ".join(a.problems)
            item = QListWidgetItem(thumb_icon(s.crop), text)
            item.setData(Qt.ItemDataRole.UserRole, s.template_id)
            item.setData(Qt.ItemDataRole.UserRole + 1, a.low_quality)
            item.setToolTip(f"{s.source or 'unknown source'}, added {when(s.created_at)}")
            if a.low_quality:
                item.setForeground(LOW_QUALITY)
            self.list.addItem(item)
        flag = f", {low} low quality (flagged in red: they cause false matches; delete them)" if low else ""
        self.summary.setText(f"{self.name}: {len(samples)} sample(s){flag}")

    def template_ids(self) -> list[int]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def low_quality_ids(self) -> list[int]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                if self.list.item(i).data(Qt.ItemDataRole.UserRole + 1)]

    def select_low_quality(self) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setSelected(bool(item.data(Qt.ItemDataRole.UserRole + 1)))

    def delete_samples(self, template_ids: list[int]) -> None:
        """Erase these samples; the person's last sample is kept (delete the person instead)."""
        if len(template_ids) >= self.list.count():
            raise FaceappError(f"that would delete every sample of {self.name}; delete the person instead")
        for tid in template_ids:
            self.pipeline.gallery.remove_template(int(tid))
        self.reload()

    def move_samples(self, template_ids: list[int], target: str) -> None:
        """Move these samples to ``target`` (see :func:`faceapp.recognise.library.move_samples`)."""
        move_samples(self.pipeline.gallery, self.name, template_ids, target)
        self.reload()

    def move_selected_dialog(self) -> None:
        ids = [i.data(Qt.ItemDataRole.UserRole) for i in self.list.selectedItems()]
        others = [p.name for p in self.pipeline.gallery.list_persons() if p.name != self.name]
        if not ids or not others:
            return
        target, ok = QInputDialog.getItem(self, "Move samples", f"Move {len(ids)} sample(s) of {self.name} to:",
                                          others, 0, False)
        if ok:
            try:
                self.move_samples(ids, target)
            except FaceappError as exc:
                error_box(self, exc)

    def delete_selected_dialog(self) -> None:
        ids = [i.data(Qt.ItemDataRole.UserRole) for i in self.list.selectedItems()]
        if ids and QMessageBox.question(self, "Delete samples", f"Delete {len(ids)} sample(s) of {self.name}?") \
                == QMessageBox.StandardButton.Yes:
            try:
                self.delete_samples(ids)
            except FaceappError as exc:
                error_box(self, exc)
