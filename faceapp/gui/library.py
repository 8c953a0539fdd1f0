"""The face library: people grid, a person's samples, the unknown-faces inbox, the
candidates of an uncertain face, and the live view's recent recognitions.

Thin views over the gallery, :mod:`faceapp.recognise.enrol` (the enrolment use case, quality
badges), :mod:`faceapp.recognise.library` (how alike two people are, moving samples),
:mod:`faceapp.recognise.inbox` (grouping, suggestions) and :mod:`faceapp.recognise.recent`;
the rules live there. The people grid scales to tens of
thousands of people: search filters an in-memory list after a short debounce, and
thumbnails are decoded only for the rows Qt asks to draw, then cached.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from faceapp.errors import FaceappError
from faceapp.gui.dialogs import Ask, EnrolChoices, ask_user, face_strip
from faceapp.gui.messages import for_gui
from faceapp.gui.widgets import IMAGE_FILTER, error_box, guarded, show_released, thumb_icon, to_pixmap, wrapped_label
from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import (
    EnrolmentResult,
    EnrolSample,
    LowQuality,
    Provenance,
    SourceKind,
    assess_sample,
    low_quality,
)
from faceapp.recognise.inbox import Suggestion, UnknownInbox
from faceapp.recognise.library import move_samples, person_similarity
from faceapp.recognise.recent import RecentRecognitions, Recognition
from faceapp.recognise.track import TrackResult
from faceapp.types import Decision, Face, FaceResult, Match

log = logging.getLogger(__name__)
SEARCH_DEBOUNCE_MS = 120
THUMB_CACHE = 2000
LOW_QUALITY = QColor(220, 50, 50)


def when(t: float | None) -> str:
    return "never" if not t else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def tile_list(cell_height: int) -> QListWidget:
    """A wrapping grid of 96-pixel face tiles with a caption under each."""
    grid = QListWidget()
    grid.setViewMode(QListWidget.ViewMode.IconMode)
    grid.setResizeMode(QListWidget.ResizeMode.Adjust)
    grid.setMovement(QListWidget.Movement.Static)
    grid.setIconSize(QSize(96, 96))
    grid.setGridSize(QSize(150, cell_height))
    grid.setWordWrap(True)
    return grid


def tile_dialog_layout(dlg: QDialog, header: QWidget, tiles: QWidget, buttons: list[QPushButton]) -> None:
    """Header, tiles (or a table), a row of buttons and Close, top to bottom."""
    row = QHBoxLayout()
    for b in buttons:
        row.addWidget(b)
    row.addStretch(1)
    close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    close.rejected.connect(dlg.reject)
    lay = QVBoxLayout(dlg)
    lay.addWidget(header)
    lay.addWidget(tiles, 1)
    lay.addLayout(row)
    lay.addWidget(close)


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


def first_crop(pipeline: Pipeline, name: str) -> bytes | None:
    """One stored face crop (JPEG) of ``name``, or ``None``."""
    try:
        return next((s.crop for s in pipeline.gallery.samples(name) if s.crop), None)
    except FaceappError:
        return None


def has_history(pipeline: Pipeline) -> bool:
    """The gallery keeps an event history (folder and PostgreSQL galleries do)."""
    return hasattr(pipeline.gallery.store, "events")


def last_seen(pipeline: Pipeline) -> dict[str, float] | None:
    """``{name: time last matched}`` from the event history; ``None`` when there is none."""
    if not has_history(pipeline):
        return None
    try:
        return dict(pipeline.gallery.store.last_seen())  # type: ignore[attr-defined]
    except FaceappError:
        return {}


class HistoryDialog(QDialog):
    """Who was seen when: kept events, newest first (a person's, or everyone's)."""

    LIMIT = 1000

    def __init__(self, pipeline: Pipeline, person: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"History: {person}" if person else "History")
        self.resize(640, 480)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["When", "Who", "Answer", "Where"])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.note = QLabel()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.note)
        lay.addWidget(self.table, 1)
        lay.addWidget(close)
        try:
            events = pipeline.gallery.store.events(person=person)  # type: ignore[attr-defined]
        except (AttributeError, FaceappError) as exc:
            events = []
            self.note.setText(for_gui(exc) if isinstance(exc, FaceappError) else
                              "This gallery keeps no history.")
        shown = list(reversed(events))[: self.LIMIT]
        if not self.note.text():
            more = f", the latest {self.LIMIT} shown" if len(events) > self.LIMIT else ""
            self.note.setText(f"{len(events)} event(s){more}")
        self.table.setRowCount(len(shown))
        for r, e in enumerate(shown):
            answer = e.decision if e.similarity is None else f"{e.decision} ({e.similarity:.2f})"
            for c, text in enumerate((when(e.time), e.person or "unknown", answer, f"{e.device}: {e.source}")):
                self.table.setItem(r, c, QTableWidgetItem(text))


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


class InboxDialog(QDialog):
    """Unknown faces, grouped by person: confirm who a group looks like, name it, add it to
    someone, or dismiss it.

    Args:
        pipeline: the gallery to enrol into.
        inbox: the unknown-faces inbox.
    """

    def __init__(self, pipeline: Pipeline, inbox: UnknownInbox, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unknown faces")
        self.resize(720, 480)
        self.pipeline, self.inbox, self.info = pipeline, inbox, wrapped_label()
        self.suggestions: dict[int, Suggestion | None] = {}
        self.list = tile_list(176)
        self.confirm_button = QPushButton("It's ...")
        self.confirm_button.setEnabled(False)
        self.confirm_button.setToolTip("Add the selected group to the enrolled person it looks like")
        self.confirm_button.clicked.connect(self.confirm_selected)
        buttons = [self.confirm_button]
        for text, slot in (("Name...", self.name_dialog), ("Add to person...", self.add_to_dialog),
                           ("Dismiss", self.dismiss_selected)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.append(b)
        self.list.currentItemChanged.connect(lambda *_: self._show_choice())
        tile_dialog_layout(self, self.info, self.list, buttons)
        self.reload()

    def reload(self) -> None:
        self.list.clear()
        groups = self.inbox.groups()
        self.suggestions = {g.id: self._suggest(g.id) for g in groups}
        for g in groups:
            hint = self.suggestions[g.id]
            looks = f"\nlooks like {hint.name} ({hint.similarity:.2f})" if hint else ""
            item = QListWidgetItem(thumb_icon(g.thumbnail),
                                   f"{g.faces} sample(s), seen {g.sightings}x\nlast {when(g.last_seen)}{looks}")
            item.setData(Qt.ItemDataRole.UserRole, g.id)
            self.list.addItem(item)
        days = f"{self.inbox.retention_days:g}"
        self.info.setText(
            f"{len(groups)} unknown face group(s). Faces are kept for {days} days, then erased. Confirm who a group "
            "looks like, name it to enrol its best samples, add it to someone enrolled, or dismiss it (erased at once)."
            if groups else f"No unknown faces. Faces the live view cannot name are collected here for {days} days.")
        self._show_choice()

    def _suggest(self, group_id: int) -> Suggestion | None:
        try:
            return self.inbox.suggest(group_id, self.pipeline.enrolment().match, model_id=self.pipeline.model_id)
        except FaceappError as exc:
            log.warning("no suggestion for unknown-faces group %s: %s", group_id, exc)
            return None

    def _show_choice(self) -> None:
        gid = self.selected()
        hint = self.suggestions.get(gid) if gid is not None else None
        self.confirm_button.setEnabled(hint is not None)
        self.confirm_button.setText(f"It's {hint.name}" if hint else "It's ...")

    def group_ids(self) -> list[int]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def selected(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def name_group(self, group_id: int, name: str, *, add: bool = False, ask: Ask | None = None) -> None:
        """Enrol a group's best samples as ``name`` (or add them to ``name``), under the enrolment
        rules; a name already enrolled is added to only once the user says so.

        Args:
            group_id: the group.
            name: the person's name.
            add: add to someone enrolled.
            ask: answers the enrolment questions instead of message boxes (tests).
        """
        choices = EnrolChoices(self, ask)
        enrolment = self.pipeline.enrolment()
        self.inbox.enrol_group(group_id, lambda samples: choices.enrol(enrolment, name, samples, add=add),
                               model_id=self.pipeline.model_id)
        self.reload()

    def confirm(self, group_id: int, ask: Ask | None = None) -> None:
        """One click: the group is the enrolled person it looks like; add its best samples to them."""
        hint = self.suggestions.get(group_id)
        if hint is None:
            raise FaceappError("this group looks like no one enrolled; name it instead")
        self.name_group(group_id, hint.name, add=True, ask=ask)

    def confirm_selected(self) -> None:
        gid = self.selected()
        if gid is not None:
            self._guarded(self.confirm, gid)

    def dismiss(self, group_id: int) -> None:
        self.inbox.dismiss(group_id)
        self.reload()

    def _guarded(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        guarded(self, fn, *args, **kw)

    def name_dialog(self) -> None:
        gid = self.selected()
        if gid is not None:
            hint = self.suggestions.get(gid)
            name, ok = QInputDialog.getText(self, "Name this person", "Name:", text=hint.name if hint else "")
            if ok and name.strip():
                self._guarded(self.name_group, gid, name)

    def add_to_dialog(self) -> None:
        gid = self.selected()
        people = [p.name for p in self.pipeline.gallery.list_persons()]
        if gid is not None and people:
            hint = self.suggestions.get(gid)
            first = people.index(hint.name) if hint and hint.name in people else 0
            name, ok = QInputDialog.getItem(self, "Add to person", "These faces are:", people, first, False)
            if ok:
                self._guarded(self.name_group, gid, name, add=True)

    def dismiss_selected(self) -> None:
        gid = self.selected()
        if gid is not None:
            self._guarded(self.dismiss, gid)


class CandidatesDialog(QDialog):
    """Who an uncertain or ambiguous face came close to; confirm one or reject one.

    Args:
        pipeline: the pipeline that matched the face.
        result: the face and its match.
        provenance: where the face was seen (kept with a confirmed sample).
    """

    def __init__(self, pipeline: Pipeline, result: FaceResult | TrackResult, parent: QWidget | None = None,
                 provenance: Provenance | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Who is this?")
        self.pipeline = pipeline
        self.face_result = result
        self.provenance = provenance or Provenance(SourceKind.LIVE, "", "face confirmed")
        m = shown_match(result) or Match(Decision.UNKNOWN, None, None)
        thr = pipeline.thresholds()
        face = QLabel()
        face.setPixmap(QPixmap(to_pixmap(np.ascontiguousarray(result.face.crop))))
        verdict = {Decision.MATCH: "a match", Decision.AMBIGUOUS: "too close to tell apart",
                   Decision.UNCERTAIN: "not sure", Decision.UNKNOWN: "unknown"}[m.decision]
        head = QLabel(f"Decision: {verdict}. A name needs a similarity of {thr.match:.2f} or more"
                      f"{' and a clear lead over the next person' if thr.margin else ''}.")
        head.setWordWrap(True)
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(face)
        top.addWidget(head, 1)
        lay.addLayout(top)
        self.rows: dict[str, tuple[QPushButton, QPushButton]] = {}
        if not m.candidates:
            lay.addWidget(QLabel("No one enrolled is close."))
        for c in m.candidates:
            row = QHBoxLayout()
            icon = QLabel()
            icon.setPixmap(thumb_icon(first_crop(pipeline, c.name)).pixmap(56, 56))
            row.addWidget(icon)
            row.addWidget(QLabel(f"{c.name}   similarity {c.similarity:.2f}"), 1)
            yes = QPushButton(f"It's {c.name}")
            no = QPushButton(f"Not {c.name}")
            yes.clicked.connect(lambda _=False, n=c.name: self._guarded(self.confirm, n))
            no.clicked.connect(lambda _=False, n=c.name: self._guarded(self.reject_person, n))
            row.addWidget(yes)
            row.addWidget(no)
            self.rows[c.name] = (yes, no)
            lay.addLayout(row)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay.addWidget(close)

    def _guarded(self, fn: Callable[[str], None], name: str) -> None:
        if guarded(self, fn, name):
            self.accept()

    def confirm(self, name: str) -> None:
        """Add this face as a sample of ``name`` (the user's explicit choice among the candidates)."""
        confirm_face(self.pipeline, self.face_result.face, name, self.provenance)

    def reject_person(self, name: str) -> None:
        """Record that this face is not ``name`` (a negative sample)."""
        reject_face(self.pipeline, self.face_result.face, name)


def shown_match(fr: FaceResult | TrackResult) -> Match | None:
    """The decision to act on for a face in the view: a track's settled decision, else its
    newest evaluation; a photo face's match."""
    if isinstance(fr, TrackResult):
        return fr.match or fr.latest
    return fr.match


def embedded(pipeline: Pipeline, face: Face) -> Face:
    """``face`` with its embedding (a tracked face is embedded only on some frames)."""
    if face.embedding is not None:
        return face
    return dataclasses.replace(face, embedding=pipeline.embedder.embed(face.crop[None])[0])


def confirm_face(pipeline: Pipeline, face: Face, name: str, provenance: Provenance) -> EnrolmentResult:
    """"It's X", the user's explicit choice: add the face as a sample of ``name``, who is enrolled."""
    sample = EnrolSample.from_face(embedded(pipeline, face), provenance)
    return pipeline.enrolment().enrol(name, [sample], add=True, despite_match=True)


def reject_face(pipeline: Pipeline, face: Face, name: str) -> None:
    """"Not X": keep the face as a negative sample of ``name``."""
    pipeline.reject(name, embedded(pipeline, face))


class RecentDialog(QDialog):
    """The live view's last decisions (face, answer, similarity, time): "Yes, X" adds the face
    as a sample of X (only when the user clicks it), "Not X" keeps it as a negative sample.

    Args:
        pipeline: the gallery the answers came from.
        recent: the live view's recent recognitions.
    """

    def __init__(self, pipeline: Pipeline, recent: RecentRecognitions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Recent recognitions")
        self.resize(640, 520)
        self.pipeline, self.recent, self.info = pipeline, recent, wrapped_label()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Face", "Answer", "When", ""])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(56, 56))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.reload)
        tile_dialog_layout(self, self.info, self.table, [refresh])
        self.buttons: dict[int, tuple[QPushButton, QPushButton]] = {}
        self.reload()

    def reload(self) -> None:
        entries = self.recent.entries()
        self.buttons = {}
        self.table.setRowCount(len(entries))
        for r, e in enumerate(entries):
            face = QTableWidgetItem(QIcon(to_pixmap(np.ascontiguousarray(e.face.crop))), "")
            self.table.setItem(r, 0, face)
            self.table.setItem(r, 1, QTableWidgetItem(answer_text(e)))
            self.table.setItem(r, 2, QTableWidgetItem(dt.datetime.fromtimestamp(e.time).strftime("%H:%M:%S")))
            self.table.setRowHeight(r, 62)
            if e.decision is Decision.MATCH and e.person:
                cell = QWidget()
                row = QHBoxLayout(cell)
                row.setContentsMargins(2, 2, 2, 2)
                yes, no = QPushButton(f"Yes, {e.person}"), QPushButton(f"Not {e.person}")
                yes.setToolTip(f"Add this face as a sample of {e.person}")
                no.setToolTip(f"Keep this face as 'not {e.person}', so it is not named {e.person} again")
                yes.clicked.connect(lambda _=False, i=e.id: guarded(self, self.confirm, i))
                no.clicked.connect(lambda _=False, i=e.id: guarded(self, self.correct, i))
                row.addWidget(yes)
                row.addWidget(no)
                self.table.setCellWidget(r, 3, cell)
                self.buttons[e.id] = (yes, no)
        self.table.resizeColumnsToContents()
        self.info.setText(
            f"The live view's last {len(entries)} answer(s), newest first. Confirm a right answer to add that face "
            "as a sample, or correct a wrong one so the face is not named that way again." if entries else
            "No recognitions yet: the answers of the live view are listed here while the app runs.")

    def entry(self, entry_id: int) -> Recognition:
        found = next((e for e in self.recent.entries() if e.id == entry_id), None)
        if found is None or found.person is None:
            raise FaceappError("that recognition is no longer listed; refresh")
        return found

    def confirm(self, entry_id: int) -> EnrolmentResult:
        """"Yes, X": add the face as a sample of X, the user's choice."""
        e = self.entry(entry_id)
        assert e.person is not None
        done = confirm_face(self.pipeline, e.face, e.person, Provenance(SourceKind.LIVE, e.source, "recognition confirmed"))
        self.recent.remove(entry_id)
        self.reload()
        return done

    def correct(self, entry_id: int) -> None:
        """"Not X": keep the face as a negative sample of X."""
        e = self.entry(entry_id)
        assert e.person is not None
        reject_face(self.pipeline, e.face, e.person)
        self.recent.remove(entry_id)
        self.reload()


def answer_text(e: Recognition) -> str:
    """A recognition in words: "Obama 0.72", "Unknown (closest: Ann 0.31)"."""
    sim = "" if e.similarity is None else f" {e.similarity:.2f}"
    if e.decision is Decision.MATCH and e.person:
        return f"{e.person}{sim}"
    word = {Decision.AMBIGUOUS: "Too close to tell", Decision.UNCERTAIN: "Not sure"}.get(e.decision, "Unknown")
    return f"{word} (closest: {e.candidate}{sim})" if e.candidate else word
