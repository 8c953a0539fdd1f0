"""Who an uncertain or ambiguous face came close to; confirm one or reject one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from faceapp.gui.answers import confirm_face, reject_face, shown_match
from faceapp.gui.tiles import first_crop
from faceapp.gui.widgets import guarded, thumb_icon, to_pixmap
from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import Provenance, SourceKind
from faceapp.recognise.track import TrackResult
from faceapp.types import Decision, FaceResult, Match


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
