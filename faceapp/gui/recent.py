"""The live view's recent recognitions (:mod:`faceapp.recognise.recent`), to confirm or correct."""

from __future__ import annotations

import datetime as dt

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QDialog, QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem, QWidget

from faceapp.errors import FaceappError
from faceapp.gui.answers import confirm_face, reject_face
from faceapp.gui.tiles import tile_dialog_layout
from faceapp.gui.widgets import guarded, to_pixmap, wrapped_label
from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import EnrolmentResult, Provenance, SourceKind
from faceapp.recognise.recent import RecentRecognitions, Recognition
from faceapp.types import Decision


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
