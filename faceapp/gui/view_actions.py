"""What the user can do with what the main view shows: a clicked face's menu and the answers
about it ("This is X", "Name this person...", "Not X", its candidates), and a snapshot of
the frame."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMenu, QWidget

from faceapp.errors import FaceappError
from faceapp.gui.answers import confirm_face, embedded, reject_face, shown_match
from faceapp.gui.candidates import CandidatesDialog
from faceapp.gui.dialogs import Ask, EnrolChoices
from faceapp.gui.widgets import VideoView, error_box, guarded, show_released
from faceapp.gui.worker import FrameResult
from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import EnrolmentResult, EnrolSample, Provenance, SourceKind
from faceapp.types import Decision


class ViewActions(QObject):
    """The per-face actions controller beside the main window (as photo mode is).

    Args:
        pipeline: gives the pipeline in use (the window may swap it).
        view: the view whose faces are acted on.
        shown: gives the result on screen (``None`` before the first) and whether it is a
            photo-mode result (``False``: the live view).
        parent: the owning widget (dialogs and warnings open over it).

    Signals:
        galleryChanged(): a face was added or noted; the window counts the gallery again.
        messageShown(str): a line for the status bar.
    """

    galleryChanged = Signal()
    messageShown = Signal(str)

    def __init__(self, pipeline: Callable[[], Pipeline], view: VideoView,
                 shown: Callable[[], tuple[FrameResult | None, bool]], parent: QWidget) -> None:
        super().__init__(parent)
        self._pipeline = pipeline
        self.view = view
        self._shown = shown
        self._parent = parent

    def face_menu(self, i: int, where: QPointF | None = None) -> QMenu:
        """The menu of a clicked face (live view or photo result): "Not X" for a named face;
        "This is X" for the closest person and "Name this person..." for any other face; the
        candidates for any."""
        fr = self.view.faces[i]
        menu = QMenu(self._parent)
        m = shown_match(fr)
        if m is None:
            return menu
        if m.decision is Decision.MATCH and m.person:
            menu.addAction(f"Not {m.person}", lambda: self.reject(i))
        else:
            if m.candidates:
                top = m.candidates[0].name
                menu.addAction(f"This is {top}", lambda: self._guarded(self.confirm_face, i, top))
            menu.addAction("Name this person...", lambda: self.name_face_dialog(i))
        if m.candidates:
            menu.addAction("Who could this be?..." if m.decision is not Decision.MATCH else "Details...",
                           lambda: self.open_candidates(i))
        if where is not None and not menu.isEmpty():
            menu.popup(where.toPoint())
        return menu

    def seen(self) -> Provenance:
        """Where the view's faces come from: the live source, or the photo shown."""
        last, photo = self._shown()
        source = last.source if last is not None else ""
        return Provenance.photo(source) if photo else Provenance(SourceKind.LIVE, source, "face confirmed")

    def _guarded(self, fn: Any, *args: Any) -> None:
        guarded(self._parent, fn, *args)
        self.galleryChanged.emit()

    def confirm_face(self, i: int, name: str) -> EnrolmentResult:
        """"This is X" for face ``i`` of the view: add it as a sample of ``name`` (the user's choice)."""
        done = confirm_face(self._pipeline(), self.view.faces[i].face, name, self.seen())
        self.messageShown.emit(f"added a sample to {done.person.name}")
        return done

    def name_face(self, i: int, name: str, ask: Ask | None = None) -> EnrolmentResult | None:
        """Enrol face ``i`` of the view as ``name``, under the enrolment rules (a name or a face
        already enrolled is asked about); ``None`` when the user chose not to store it.

        Args:
            i: the face's index in the view.
            name: the person's name.
            ask: answers the enrolment questions instead of message boxes (tests).
        """
        pipeline = self._pipeline()
        sample = EnrolSample.from_face(embedded(pipeline, self.view.faces[i].face), self.seen())
        done = EnrolChoices(self._parent, ask).enrol(pipeline.enrolment(), name, [sample])
        if done is not None:
            self.messageShown.emit(f"{done.person.name}: {done.person.templates} sample(s)")
        return done

    def name_face_dialog(self, i: int) -> None:
        name, ok = QInputDialog.getText(self._parent, "Name this person", "Name:")
        if ok and name.strip():
            self._guarded(self.name_face, i, name)

    def reject(self, i: int) -> None:
        """"Not X" for face ``i`` of the view: a negative sample for the named person."""
        fr = self.view.faces[i]
        m = shown_match(fr)
        if m is None or m.person is None:
            return
        try:
            reject_face(self._pipeline(), fr.face, m.person)
        except FaceappError as exc:
            error_box(self._parent, exc)
            return
        self.messageShown.emit(f"noted: that face is not {m.person}")

    def open_candidates(self, i: int) -> CandidatesDialog:
        dlg = CandidatesDialog(self._pipeline(), self.view.faces[i], self._parent, provenance=self.seen())
        dlg.finished.connect(self.galleryChanged)
        return show_released(dlg)

    def snapshot(self, path: Path) -> Path:
        """Save the frame on screen to ``path`` (PNG or JPEG by its suffix)."""
        last, _ = self._shown()
        if last is None:
            raise FaceappError("no frame to save yet")
        from PIL import Image

        Image.fromarray(last.frame).save(path)
        return path

    def snapshot_dialog(self) -> None:
        name = time.strftime("faceapp-%Y%m%d-%H%M%S.png")
        f, _ = QFileDialog.getSaveFileName(self._parent, "Save snapshot", name, "PNG (*.png);;JPEG (*.jpg)")
        if f:
            try:
                self.snapshot(Path(f))
            except (FaceappError, OSError) as exc:
                error_box(self._parent, exc)
