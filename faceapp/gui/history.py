"""Who was seen when: a gallery's event history, newest first."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from faceapp.errors import FaceappError
from faceapp.gui.messages import for_gui
from faceapp.gui.tiles import when
from faceapp.pipeline import Pipeline


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
