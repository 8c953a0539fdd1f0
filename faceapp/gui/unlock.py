"""Opening a gallery whose key on this device is protected by a passphrase.

The desktop app has no terminal to type it in (it is started from a menu), so it asks in a
dialog with a masked field. The passphrase reaches the key store through
:func:`faceapp.gallery.keys.given_passphrase` while the gallery opens, in memory only (never in
the environment, which child processes would inherit); the field is emptied after each try. It
is never logged or shown.
Once the gallery is open its key is in memory and the passphrase is not needed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from faceapp.errors import FaceappError
from faceapp.gallery.keys import PASSPHRASE_ENV, WrongPassphraseError, given_passphrase
from faceapp.gui.messages import for_gui
from faceapp.pipeline import Pipeline

LOCKED = ("The gallery is locked: the key that opens it on this computer is protected by a passphrase, and "
          "none was given. Nothing can be matched, added or shown until it is unlocked.")
WRONG = "wrong passphrase, try again"


def passphrase_refused(exc: BaseException) -> bool:
    """Whether a gallery failed to open because the key on this device is sealed by a
    passphrase that did not unseal it, rather than a key that is missing or not the
    gallery's (those are gallery problems: no passphrase opens them)."""
    return isinstance(exc, WrongPassphraseError)


def open_gallery(pipeline: Pipeline, passphrase: str | None = None) -> bool:
    """Open ``pipeline``'s gallery, never asking in a terminal.

    Args:
        pipeline: whose gallery to open.
        passphrase: for a protected key; ``None``: the user's own ``FACEAPP_KEY_PASSPHRASE``
            when set, else none (an empty one, which no sealed key takes).

    Returns:
        Whether the gallery is open; ``False`` when its key needs a passphrase (none or a wrong one).

    Raises:
        FaceappError: it cannot be opened for another reason.
    """
    given = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV, "")
    try:
        with given_passphrase(given):
            _ = pipeline.gallery
    except FaceappError as exc:
        if passphrase_refused(exc):
            return False
        raise
    return True


class PassphraseDialog(QDialog):
    """Asks for the passphrase of the gallery key (masked) and hands each try to ``attempt``;
    the dialog closes when a try opens the gallery and says so when one is wrong.

    Args:
        where: the gallery, as shown to the user.
        attempt: tries a passphrase: ``True`` when it opened the gallery, ``False`` when it
            is wrong; raises :class:`~faceapp.errors.FaceappError` for any other problem.
        parent: the window it is modal to.
    """

    def __init__(self, where: str, attempt: Callable[[str], bool], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unlock the gallery")
        self._attempt = attempt
        text = QLabel(f"The key of the gallery {where} on this computer is protected by a passphrase. "
                      "Type it to open the gallery.")
        text.setWordWrap(True)
        self.field = QLineEdit()
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setPlaceholderText("Passphrase")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c62828")
        self.problem.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.try_passphrase)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        for w in (text, self.field, self.problem, self.buttons):
            lay.addWidget(w)
        self.setMinimumWidth(420)

    def ask(self) -> None:
        """Show the dialog (again), empty, without the last problem."""
        self.field.clear()
        self.problem.setVisible(False)
        self.open()
        self.field.setFocus()

    def try_passphrase(self) -> None:
        """Try what was typed; the field is emptied whatever the outcome."""
        typed = self.field.text()
        self.field.clear()
        try:
            opened = self._attempt(typed)
        except FaceappError as exc:
            self._say(for_gui(exc))
            return
        if opened:
            self.accept()
        else:
            self._say(WRONG)

    def _say(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(True)
        self.field.setFocus()


class GalleryUnlock(QObject):
    """Opens the window's gallery and, when its key needs a passphrase, keeps it locked while
    :class:`PassphraseDialog` asks (modal to the window, which stays usable once it is
    cancelled: :meth:`ask` shows it again).

    Args:
        pipeline: gives the pipeline in use (the window may swap it).
        parent: the window.

    Signals:
        unlocked(): the gallery opened with the passphrase typed.
        cancelled(): the user closed the dialog; the gallery stays locked.
    """

    unlocked = Signal()
    cancelled = Signal()

    def __init__(self, pipeline: Callable[[], Pipeline], parent: QWidget) -> None:
        super().__init__(parent)
        self._pipeline = pipeline
        self._parent = parent
        self.locked = False
        self.dialog: PassphraseDialog | None = None

    def open(self) -> bool:
        """Open the gallery without a passphrase from the user; when it needs one, lock it and ask.

        Any other problem is left for the window to show (it is met again when the gallery is read).

        Returns:
            Whether the gallery is locked.
        """
        if self.dialog is not None:  # it named the gallery of the pipeline before
            self.dialog.deleteLater()
            self.dialog = None
        try:
            self.locked = not open_gallery(self._pipeline())
        except FaceappError:
            self.locked = False
        if self.locked:
            self.ask()
        return self.locked

    def ask(self) -> PassphraseDialog:
        """Ask for the passphrase (again)."""
        if self.dialog is None:
            where = str(self._pipeline().settings.gallery_address())  # a server's password left out
            self.dialog = PassphraseDialog(where, self._attempt, self._parent)
            self.dialog.rejected.connect(self.cancelled)
        self.dialog.ask()
        return self.dialog

    def _attempt(self, passphrase: str) -> bool:
        if not open_gallery(self._pipeline(), passphrase):
            return False
        self.locked = False
        self.unlocked.emit()
        return True
