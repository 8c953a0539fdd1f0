"""The unknown-faces inbox: groups of faces the live view could not name
(:mod:`faceapp.recognise.inbox` groups them and suggests who they look like)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QInputDialog, QListWidgetItem, QPushButton, QWidget

from faceapp.errors import FaceappError
from faceapp.gui.dialogs import Ask, EnrolChoices
from faceapp.gui.tiles import tile_dialog_layout, tile_list, when
from faceapp.gui.widgets import guarded, thumb_icon, wrapped_label
from faceapp.pipeline import Pipeline
from faceapp.recognise.inbox import Suggestion, UnknownInbox

log = logging.getLogger(__name__)


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
