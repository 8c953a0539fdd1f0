"""The gallery as the main window shows it: how many people, what is wrong with it (it cannot
be opened, it is locked behind a passphrase, read-only, has damaged templates, or was made
by another model) and the repair of damaged templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from faceapp.errors import FaceappError
from faceapp.gui.messages import for_gui
from faceapp.gui.notice import what_still_works
from faceapp.gui.reembed import needs_reembed
from faceapp.gui.unlock import LOCKED
from faceapp.gui.widgets import error_box
from faceapp.pipeline import Pipeline


@dataclass(frozen=True)
class GalleryState:
    """The gallery as it is now.

    Attributes:
        people: how many people it holds; ``None`` when it cannot be read.
        problem: why it cannot be used, in the app's words; ``None`` when it can.
        read_only: it can be read but not changed.
        locked: its key waits for a passphrase (it is not opened meanwhile).
    """

    people: int | None
    problem: str | None = None
    read_only: bool = False
    locked: bool = False


class GalleryUpkeep(QObject):
    """Reads the gallery's state for the window and repairs damaged templates.

    Args:
        pipeline: gives the pipeline in use (the window may swap it).
        locked: whether the gallery is locked (see :class:`~faceapp.gui.unlock.GalleryUnlock`);
            a locked gallery is never opened here, so nothing asks for its passphrase behind the window.
        parent: the window (warnings open over it).

    Signals:
        changed(): what the gallery label and the notice show may have changed.
        messageShown(str): a line for the status bar.
    """

    changed = Signal()
    messageShown = Signal(str)

    def __init__(self, pipeline: Callable[[], Pipeline], locked: Callable[[], bool], parent: QWidget) -> None:
        super().__init__(parent)
        self._pipeline = pipeline
        self._locked = locked
        self._parent = parent
        self.damaged: dict[str, int] = {}  # person -> damaged stored vectors

    def state(self) -> GalleryState:
        if self._locked():
            return GalleryState(None, LOCKED, locked=True)
        try:
            gallery = self._pipeline().gallery
            return GalleryState(len(gallery), read_only=bool(gallery.store.read_only))
        except FaceappError as exc:
            return GalleryState(None, for_gui(exc))

    def still_works(self) -> str:
        """What the app can still do while the live source is away (see :func:`~faceapp.gui.notice.what_still_works`)."""
        s = self.state()
        return what_still_works(gallery_problem=s.problem, read_only=s.read_only)

    def label(self) -> tuple[str, str]:
        """The status bar's gallery label and its tooltip."""
        s = self.state()
        if s.locked:
            return "gallery: locked", "Unlock the gallery with its key's passphrase"
        if s.people is None:
            return "gallery: error", s.problem or ""
        if s.read_only:
            return (f"gallery: {s.people} people, read-only",
                    "The gallery folder is read-only: people can be matched and browsed, not added or changed")
        return f"gallery: {s.people} people", ""

    def stale(self) -> bool:
        """The gallery holds templates of another model (it is rebuilt for this one)."""
        if self._locked():
            return False
        try:
            return needs_reembed(self._pipeline())
        except FaceappError:
            return False

    def find_damaged(self) -> None:
        """Damaged stored vectors, by person (looked for once the gallery is open and after a repair)."""
        found = []
        if not self._locked():
            try:
                found = self._pipeline().gallery.damaged_templates()
            except FaceappError:
                found = []
        self.damaged = {}
        for d in found:
            self.damaged[d.name] = self.damaged.get(d.name, 0) + 1
        self.changed.emit()

    def repair(self) -> None:
        """Embed damaged templates again from their stored face crops; say who could not be."""
        from faceapp.gallery.reembed import repair_damaged
        from faceapp.vision.images import decode_crop

        pipeline = self._pipeline()
        try:
            report = repair_damaged(pipeline.gallery, pipeline.model_id, pipeline.embedder.embed, decode_crop)
        except FaceappError as exc:
            error_box(self._parent, exc)
            return
        text = f"repaired {len(report.repaired)} damaged template(s) from their face crops"
        if report.left:
            text += f"; enrol {', '.join(sorted({d.name for d in report.left}))} again (no face crop to use)"
        self.messageShown.emit(text)
        self.find_damaged()
