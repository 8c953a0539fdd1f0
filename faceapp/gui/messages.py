"""Error messages in the desktop app's words.

The core's errors are written for the command line ("use --gallery", "see `faceapp-cli
list`"). The GUI has no flags: :func:`for_gui` rewrites those hints into the place in the
app where the same thing is done. Pure string functions, no Qt.
"""

from __future__ import annotations

import re

# (CLI phrase, GUI phrase); the most specific first.
_PHRASES: tuple[tuple[str, str], ...] = (
    ("see `faceapp-cli list`", "see the People view"),
    ("run `faceapp-cli reembed`", 'press "Rebuild gallery for this model"'),
    ("use --add to add these photos to them", "add the photos to them instead"),
    (" with --add, or use --despite-match if ", " instead, or save them under the new name if "),
    ("choose another with --gallery", "choose another gallery folder in Settings"),
    ("or use --gallery", "or choose another gallery folder in Settings"),
    ("use the same --model or a new --gallery", "choose the same model file, or a new gallery folder, in Settings"),
    ("check --model or reinstall faceapp", "choose another model file in Settings or reinstall faceapp"),
    ("check --model", "choose another model file in Settings"),
    ("--provider cuda was asked for but", "the CUDA provider was chosen but"),
    ("use --provider auto or cpu", "choose the provider auto or cpu in Settings"),
)
_FLAG = re.compile(r"(?<![\w-])--([a-z][\w-]*)")
_COMMAND = re.compile(r"`?faceapp-cli(?: [a-z-]+)*`?")


def for_gui(message: str | BaseException) -> str:
    """``message`` with command-line hints replaced by where the app does the same thing.

    Args:
        message: an error or its text.

    Returns:
        The text with no ``--flag`` and no ``faceapp-cli`` command in it.
    """
    text = str(message)
    for cli, gui in _PHRASES:
        text = text.replace(cli, gui)
    text = _FLAG.sub(lambda m: f"the {m.group(1).replace('-', ' ')} setting", text)
    return _COMMAND.sub("the app", text)
