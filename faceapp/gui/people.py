"""The people grid: thumbnail, name and sample count; search, open, rename, merge, delete.

Scales to tens of thousands of people: search filters an in-memory list after a short
debounce, and thumbnails are decoded only for the rows Qt asks to draw, then cached.
The rules live in :mod:`faceapp.recognise.enrol` (enrolment, quality badges) and
:mod:`faceapp.recognise.library` (how alike two people are).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from faceapp.errors import FaceappError
from faceapp.gui.dialogs import Ask, EnrolChoices, ask_user, face_strip
from faceapp.gui.history import HistoryDialog, has_history, last_seen
from faceapp.gui.samples import SamplesDialog
from faceapp.gui.tiles import LOW_QUALITY, first_crop, when
from faceapp.gui.widgets import IMAGE_FILTER, error_box, guarded, show_released, thumb_icon
from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import EnrolSample, LowQuality, Provenance, assess_sample, low_quality
from faceapp.recognise.library import person_similarity

SEARCH_DEBOUNCE_MS = 120
THUMB_CACHE = 2000


class PeopleModel(QAbstractListModel):
    """Enrolled people, filtered by a search text; thumbnails loaded when first drawn.

    Args:
        pipeline: whose gallery to show.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self._all: list[Any] = []
        self._keys: list[str] = []
        self._rows: list[Any] = []
        self._text = ""
        self._icons: OrderedDict[str, tuple[QIcon, int]] = OrderedDict()
        self.thumbnails_decoded = 0
        self.seen: dict[str, float] | None = None  # None: this gallery keeps no event history

    def reload(self) -> None:
        """Read the people again from the gallery (after a change)."""
        self._all = list(self.pipeline.gallery.list_persons())
        self.seen = last_seen(self.pipeline)
        self._keys = [p.name.casefold() for p in self._all]
        self._icons.clear()
        self.set_filter(self._text)

    def set_filter(self, text: str) -> None:
        """Show only people whose name contains ``text`` (case-insensitive)."""
        self._text = text
        key = text.strip().casefold()
        self.beginResetModel()
        self._rows = [p for p, k in zip(self._all, self._keys) if key in k] if key else list(self._all)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def person(self, row: int) -> Any:
        return self._rows[row]

    def names(self) -> list[str]:
        return [p.name for p in self._rows]

    def _icon(self, name: str) -> tuple[QIcon, int]:
        hit = self._icons.get(name)
        if hit is not None:
            self._icons.move_to_end(name)
            return hit
        try:
            samples = self.pipeline.gallery.samples(name)
        except FaceappError:
            samples = []
        low = sum(assess_sample(s.quality).low_quality for s in samples)
        data = next((s.crop for s in samples if s.crop), None)
        icon = thumb_icon(data)
        self.thumbnails_decoded += data is not None
        self._icons[name] = (icon, low)
        if len(self._icons) > THUMB_CACHE:
            self._icons.popitem(last=False)
        return icon, low

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        p = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            text = f"{p.name}\n{p.templates} sample{'s' if p.templates != 1 else ''}"
            return text if self.seen is None else f"{text}\nseen {when(self.seen.get(p.name))}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(p.name)[0]
        if role == Qt.ItemDataRole.ToolTipRole:
            low = self._icon(p.name)[1]
            extra = f"\n{low} low-quality sample(s): open to review" if low else ""
            seen = "" if self.seen is None else f", last seen {when(self.seen.get(p.name))}"
            return f"{p.name}: {p.templates} sample(s), enrolled {when(p.created_at)}{seen}{extra}"
        if role == Qt.ItemDataRole.ForegroundRole and self._icon(p.name)[1]:
            return LOW_QUALITY
        if role == Qt.ItemDataRole.UserRole:
            return p.name
        return None


class PeopleDialog(QDialog):
    """The people grid: thumbnail, name and sample count; search, open, rename, merge, delete."""

    def __init__(self, pipeline: Pipeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("People")
        self.resize(760, 560)
        self.pipeline = pipeline
        self.model = PeopleModel(pipeline)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by name")
        self.search.setClearButtonEnabled(True)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.apply_search)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(200)
        self.grid.setIconSize(QSize(88, 88))
        self.grid.setGridSize(QSize(150, 150))
        self.grid.setWordWrap(False)  # name on one line (elided when long), the count under it
        self.grid.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.grid.setModel(self.model)
        self.grid.doubleClicked.connect(lambda idx: self.open_person(self.model.person(idx.row()).name))
        self.count = QLabel()
        self.empty = QLabel("No one is enrolled yet. Add your first person from the main window (Add person...).")
        self.empty.setWordWrap(True)
        buttons = QHBoxLayout()
        for text, slot in (("Samples...", self._open_selected), ("Add photos...", self.add_samples_dialog),
                           ("Rename...", self.rename_dialog),
                           ("Merge into...", self.merge_dialog), ("Delete...", self.delete_dialog),
                           ("History...", self.open_history)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
            if text == "History...":
                b.setEnabled(has_history(pipeline))
                b.setToolTip("Who was seen when: kept while the record_events setting is on, or by watch --record")
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.count)
        lay.addLayout(top)
        lay.addWidget(self.empty)
        lay.addWidget(self.grid, 1)
        lay.addLayout(buttons)
        lay.addWidget(close)
        if pipeline.gallery.store.read_only:  # browsing works; every change would be refused
            for b in self.findChildren(QPushButton):
                if b.text() in ("Add photos...", "Rename...", "Merge into...", "Delete..."):
                    b.setEnabled(False)
                    b.setToolTip("The gallery is read-only: fix its folder's permissions to change it")
        self.reload()

    def reload(self) -> None:
        try:
            self.model.reload()
        except FaceappError as exc:
            error_box(self, exc)
        self.empty.setVisible(not self.model._all)
        self._show_count()

    def apply_search(self) -> None:
        """Filter the grid by the search text now (normally 120 ms after the last keystroke)."""
        self._debounce.stop()
        self.model.set_filter(self.search.text())
        self._show_count()

    def _show_count(self) -> None:
        shown, total = self.model.rowCount(), len(self.model._all)
        noun = "person" if total == 1 else "people"
        self.count.setText(f"{shown} of {total} {noun}" if self.model._text.strip() else f"{total} {noun}")

    def names(self) -> list[str]:
        return self.model.names()

    def selected(self) -> str | None:
        idx = self.grid.currentIndex()
        return self.model.person(idx.row()).name if idx.isValid() else None

    def open_person(self, name: str) -> SamplesDialog:
        dlg = SamplesDialog(self.pipeline, name, self)
        dlg.finished.connect(self.reload)
        return show_released(dlg)

    def _open_selected(self) -> None:
        name = self.selected()
        if name:
            self.open_person(name)

    def open_history(self) -> HistoryDialog:
        """Who was seen when: the selected person's events, or everyone's."""
        dlg = HistoryDialog(self.pipeline, self.selected(), self)
        return show_released(dlg)

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        guarded(self, fn, *args)
        self.reload()

    def add_samples(self, name: str, paths: list[Path], ask: Ask | None = None) -> LowQuality | None:
        """Add the main face of each photo as a sample of ``name``, under the enrolment rules.

        Args:
            name: the person.
            paths: photo files.
            ask: answers the enrolment questions instead of message boxes (tests; see
                :class:`~faceapp.gui.dialogs.EnrolChoices`).

        Returns:
            How many of the added samples are low quality, and why; ``None`` when nothing was added.
        """
        samples = [EnrolSample.from_face(self.pipeline.main_face(Path(p)), Provenance.photo(Path(p).name))
                   for p in paths]
        done = EnrolChoices(self, ask).enrol(self.pipeline.enrolment(), name, samples, add=True)
        self.reload()
        return None if done is None else low_quality(s.quality for s in done.added)

    def add_samples_dialog(self) -> None:
        name = self.selected()
        if name:
            files, _ = QFileDialog.getOpenFileNames(self, f"Photos of {name}", "", IMAGE_FILTER)
            if files:
                self._guarded(self._add_and_report, name, [Path(f) for f in files])

    def _add_and_report(self, name: str, paths: list[Path]) -> None:
        flagged = self.add_samples(name, paths)
        if flagged is not None and flagged.flagged:
            QMessageBox.information(self, "faceapp", f"Added to {name}: {flagged}")

    def rename_dialog(self) -> None:
        name = self.selected()
        if name:
            new, ok = QInputDialog.getText(self, "Rename", f"New name for {name}:", text=name)
            if ok and new.strip():
                self._guarded(self.pipeline.gallery.rename, name, new)

    def delete_dialog(self) -> None:
        name = self.selected()
        if name and QMessageBox.question(
            self, "Delete", f"Delete {name} and all their samples? This cannot be undone."
        ) == QMessageBox.StandardButton.Yes:
            self._guarded(self.pipeline.gallery.remove, name)

    def merge_dialog(self) -> None:
        name = self.selected()
        others = [p.name for p in self.model._all if p.name != name]
        if name and others:
            target, ok = QInputDialog.getItem(self, "Merge", f"Move all of {name}'s samples to:", others, 0, False)
            if ok:
                try:
                    self.merge(name, target)
                except FaceappError as exc:
                    error_box(self, exc)

    def merge(self, source: str, target: str, ask: Ask | None = None) -> bool:
        """Merge ``source`` into ``target`` once the user has seen a face of each and how alike
        they are, and said yes.

        Args:
            source: the person whose samples move.
            target: the person who keeps them.
            ask: answers the question instead of a message box (tests); ``Yes`` merges.

        Returns:
            Whether they were merged.
        """
        gallery = self.pipeline.gallery
        sim = person_similarity(gallery, source, target, self.pipeline.model_id)
        thr = self.pipeline.verify_threshold()
        if sim is None:
            alike = "Their similarity cannot be measured (no samples of this model)."
        else:
            verdict = "like the same person" if sim >= thr else "NOT like the same person"
            alike = f"Similarity {sim:.2f}: {verdict} (the same person usually reaches {thr:.2f})."
        faces = face_strip([first_crop(self.pipeline, source), first_crop(self.pipeline, target)])
        yes = QMessageBox.StandardButton.Yes
        answer = ask_user(self, ask, "Merge people",
                          f"Merge '{source}' (left) into '{target}' (right)?\n{alike}\n"
                          f"All of {source}'s samples move to {target} and '{source}' is removed.",
                          {yes: f"Merge into {target}"}, faces)
        if answer != yes:
            return False
        self._guarded(gallery.merge, source, target)
        return True
