"""The notice bar above the live view: the one thing to do next, with a button for it."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from faceapp.config import SettingProblem

# action name -> button text (``fix_setting``'s text depends on the problem)
ACTIONS = {
    "fix_setting": "",
    "reembed": "Rebuild gallery for this model",
    "repair": "Repair damaged templates",
    "enrol": "Add your first person...",
    "video": "Open a video file...",
    "folder": "Open a photo folder...",
    "retry": "Retry",
    "settings": "Choose another gallery...",
    "unlock": "Unlock with the passphrase...",
}


@dataclass(frozen=True)
class Notice:
    """What the bar shows: a text (empty = hidden) and the actions offered."""

    text: str = ""
    actions: tuple[str, ...] = ()
    fix_label: str = ""


def settings_problem_text(problem: SettingProblem) -> str:
    """A settings-file problem in the window's words: what is wrong and what is in force instead."""
    if problem.key is None:
        return (f"{problem.message}.\nThe app runs with the default settings; start from them (the file "
                "is kept beside it as .bad) or fix the file and restart.")
    return f"{problem.message}.\nThe default {problem.key} is in force until you fix the file or reset it."


def what_still_works(*, gallery_problem: str | None, read_only: bool) -> str:
    """What the app can still do while the live source is away, from the gallery's real state.

    Args:
        gallery_problem: why the gallery cannot be used (``None``: it can).
        read_only: the gallery can be read but not changed.
    """
    if gallery_problem is not None:
        return ("The gallery cannot be used, so faces cannot be matched or named and the people library "
                "cannot be shown; choose another gallery in Settings.")
    if read_only:
        return ("Matching photos and browsing the people library still work; the gallery is read-only, "
                "so nobody can be added, renamed or removed.")
    return "Matching photos and the people library still work."


def notice_for(*, problem: SettingProblem | None, stale: bool, source_error: str | None, camera: bool,
               empty: bool, damaged: dict[str, int] | None = None, gallery_problem: str | None = None,
               read_only: bool = False, locked: bool = False) -> Notice:
    """What to do next, most pressing first: a problem of the settings file (with its fix); a
    gallery locked behind its key's passphrase (unlock it, or choose another); a gallery that
    cannot be used (choose another); a gallery made by another model (rebuild
    it); damaged templates, by person (repair them); a source that failed (Retry, and for a
    camera a video or photo folder instead); an empty gallery (add the first person); a
    read-only gallery (what still works)."""
    if problem is not None:
        fix = f"Reset {problem.key} to its default" if problem.key else "Start from default settings"
        return Notice(settings_problem_text(problem), ("fix_setting",), fix)
    if locked and gallery_problem is not None:
        return Notice(gallery_problem, ("unlock", "settings"))
    if gallery_problem is not None:
        return Notice(f"{gallery_problem}\n{what_still_works(gallery_problem=gallery_problem, read_only=False)}",
                      ("settings",))
    if damaged and not stale:
        who = ", ".join(f"{name}: {n}" for name, n in damaged.items())
        return Notice(f"{sum(damaged.values())} stored template(s) are damaged and left out of matching ({who}). "
                      "Repair embeds them again from their stored face crops.", ("repair",))
    if stale:
        text = ("Your gallery was made with another face model. Rebuild it for this model: the "
                "stored faces are embedded again, and nobody has to be enrolled again.")
    elif source_error is not None:
        text = source_error + ("\nNo camera? Open a video file or a folder of photos instead." if camera else "")
    elif empty and not read_only:
        text = "Your gallery is empty. Add your first person: their face is then named in the live view."
    else:
        text = ""
    if read_only:
        said = what_still_works(gallery_problem=None, read_only=True) + " Fix the folder's permissions to change it."
        text = f"{text}\n{said}" if text else said
    offered = {"reembed": stale, "enrol": empty and not read_only, "video": source_error is not None and camera,
               "folder": source_error is not None and camera, "retry": source_error is not None and not stale}
    return Notice(text, tuple(name for name, on in offered.items() if on))


class NoticeBar(QFrame):
    """Shows a :class:`Notice`; a click on one of its buttons emits ``triggered(action)``."""

    triggered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.text = QLabel()
        self.text.setWordWrap(True)
        row = QHBoxLayout(self)
        row.addWidget(self.text, 1)
        self.buttons: dict[str, QPushButton] = {}
        for name, label in ACTIONS.items():
            b = QPushButton(label)
            b.clicked.connect(lambda _=False, n=name: self.triggered.emit(n))
            row.addWidget(b)
            self.buttons[name] = b
        self.setVisible(False)

    def show_notice(self, notice: Notice) -> None:
        self.text.setText(notice.text)
        self.buttons["fix_setting"].setText(notice.fix_label)
        for name, b in self.buttons.items():
            b.setVisible(name in notice.actions)
        self.setVisible(bool(notice.text))
