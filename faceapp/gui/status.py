"""The status bar: whole messages (elided to fit, the full text as a tooltip) and the run's
problems, each shown once with how often it happened.

Warnings logged anywhere under ``faceapp`` (a damaged image in a photo folder, a video that
ended early, a photo of a batch that could not be read) are collected by :class:`ProblemLog`:
the status bar's problems button says how many different ones there were, and opens the
list with a count beside each. Sources log each problem once (see
:mod:`faceapp.vision.capture`), so stderr is not flooded either. A warning logged as
``log.warning("%s", error)`` is shown in the app's words (:func:`~faceapp.gui.messages.for_gui`).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from faceapp.errors import FaceappError
from faceapp.gui.messages import for_gui


class _Handler(logging.Handler):
    """Hands each record's text to a :class:`ProblemLog` (from any thread)."""

    def __init__(self, sink: ProblemLog) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        error = record.args[0] if isinstance(record.args, tuple) and len(record.args) == 1 else None
        text = for_gui(error) if isinstance(error, FaceappError) else record.getMessage()
        try:
            self.sink.heard.emit(text)
        except RuntimeError:  # the window is gone
            pass


class ProblemLog(QObject):
    """The run's warnings, each kept once with its count, in the order first seen.

    Signals:
        heard(str): a warning's text (emitted from any thread; counted on the GUI thread).
        changed(): the list or a count changed.

    Args:
        logger: the logger whose warnings are collected (and its children's).
    """

    heard = Signal(str)
    changed = Signal()

    def __init__(self, logger: str = "faceapp", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.counts: dict[str, int] = {}
        self.heard.connect(self._count)
        self._logger = logging.getLogger(logger)
        self._handler = _Handler(self)
        self._logger.addHandler(self._handler)

    def _count(self, text: str) -> None:
        self.counts[text] = self.counts.get(text, 0) + 1
        self.changed.emit()

    def clear(self) -> None:
        self.counts.clear()
        self.changed.emit()

    def detach(self) -> None:
        """Stop collecting (the window closes)."""
        self._logger.removeHandler(self._handler)


class ProblemsDialog(QDialog):
    """Every problem of the run, once each, with how often it happened."""

    def __init__(self, problems: ProblemLog, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Problems")
        self.resize(720, 360)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        for text, n in problems.counts.items():
            self.list.addItem(f"{text}" + (f"  ({n} times)" if n > 1 else ""))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        clear = buttons.addButton("Clear", QDialogButtonBox.ButtonRole.ResetRole)
        clear.clicked.connect(problems.clear)
        clear.clicked.connect(self.list.clear)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"{len(problems.counts)} problem(s) since the app started, each listed once:"))
        lay.addWidget(self.list, 1)
        lay.addWidget(buttons)


class ProblemsButton(QPushButton):
    """"N problems" in the status bar (hidden while there are none); opens the list."""

    def __init__(self, problems: ProblemLog, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.problems = problems
        self.setFlat(True)
        self.setVisible(False)
        problems.changed.connect(self.refresh)
        self.clicked.connect(self.open_list)

    def refresh(self) -> None:
        n = len(self.problems.counts)
        self.setText(f"{n} problem{'s' if n != 1 else ''}")
        self.setToolTip("\n".join(list(self.problems.counts)[:10]))
        self.setVisible(n > 0)

    def open_list(self) -> ProblemsDialog:
        from faceapp.gui.widgets import show_released

        return show_released(ProblemsDialog(self.problems, self.window()))


class ElidedLabel(QLabel):
    """A one-line label that shows as much of its text as fits, ending in "…", with the
    whole text as a tooltip when it is cut."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def set_full(self, text: str) -> None:
        self.full = " ".join(text.split())  # one line: line breaks become spaces
        self._fit()

    def _fit(self) -> None:
        shown = self.fontMetrics().elidedText(self.full, Qt.TextElideMode.ElideRight, max(0, self.width()))
        self.setText(shown)
        self.setToolTip(self.full if shown != self.full else "")

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()


class StatusBar(QStatusBar):
    """A status bar whose messages take the room left of the permanent widgets and are
    elided there (never cut mid-letter or hidden), the full text as a tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = ElidedLabel()
        self.addWidget(self.message, 1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.clearMessage)

    def showMessage(self, text: str, timeout: int | None = 0) -> None:  # noqa: N802 - Qt's name
        """Show ``text`` (for ``timeout`` ms; 0 = until the next message)."""
        self.message.set_full(text)
        self.messageChanged.emit(text)
        if timeout:
            self._timer.start(timeout)
        else:
            self._timer.stop()

    def clearMessage(self) -> None:  # noqa: N802 - Qt's name
        self.message.set_full("")
        self.messageChanged.emit("")

    def currentMessage(self) -> str:  # noqa: N802 - Qt's name
        return self.message.full
