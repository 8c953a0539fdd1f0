"""Error messages in the desktop app's words.

The core names what the user can do about an error as a :class:`~faceapp.errors.Fix`; its
own wording is the command line's ("use --gallery", "see `faceapp-cli list`"). The app has no
flags: :func:`for_gui` words each fix as the place in the app where the same thing is done. A
fix that only the command line can carry out (moving a gallery key) says so. No Qt here.
"""

from __future__ import annotations

from faceapp.errors import FaceappError, Fix

SETTINGS = "in Settings"
REBUILD = 'press "Rebuild gallery for this model"'
COMMAND_LINE = "on the command line: "

WORDS: dict[Fix, str] = {
    Fix.SEE_PEOPLE: "see the People view",
    Fix.ADD_TO_THEM: "add the photos to them instead",
    Fix.ADD_OR_RENAME: "add the photos to them instead, or choose another name",
    Fix.ADD_OR_DESPITE: "add them to {match!r} instead, or save them under the new name if {name!r} is someone else",
    Fix.REEMBED: REBUILD,
    Fix.REEMBED_OR_OLD_MODEL: f"{REBUILD}, or choose the model they were made with {SETTINGS}",
    Fix.REEMBED_FIRST: f"{REBUILD} first",
    Fix.CHECK_TEMPLATES: 'press "Repair" in the notice above the view to embed them again from their face crops',
    Fix.CHECK_MODEL_OUTPUT: f"choose another model file {SETTINGS} or reinstall faceapp",
    Fix.CHOOSE_MODEL: f"choose another model file {SETTINGS}",
    Fix.CHOOSE_MODEL_OR_REINSTALL: f"choose another model file {SETTINGS} or reinstall faceapp",
    Fix.PROVIDER_AUTO_OR_CPU: f"choose the provider auto or cpu {SETTINGS}",
    Fix.PROVIDER_CPU: f"choose the provider cpu {SETTINGS}",
    Fix.CUDA_OR_AUTO: f"install onnxruntime-gpu, or choose the provider auto or cpu {SETTINGS}",
    Fix.OPENVINO_OR_AUTO: f"install faceapp's openvino extra, or choose the provider auto or cpu {SETTINGS}",
    Fix.CALIBRATE: COMMAND_LINE + "faceapp-cli calibrate, with photos of people on different days",
    Fix.IMPORT_RIGHT_KEY: COMMAND_LINE + "faceapp-cli gallery key import FILE, with the right key",
    Fix.IMPORT_KEY: COMMAND_LINE + "faceapp-cli gallery key import FILE, with the file a device that has it "
                    "wrote with faceapp-cli gallery key export FILE",
    Fix.FINISH_COPY: COMMAND_LINE + "faceapp-cli gallery copy {source} {target}, again, to finish the copy",
    Fix.EXPORT_KEY_AGAIN: COMMAND_LINE + "faceapp-cli gallery key export, to write it again",
    Fix.KEY_FILE: COMMAND_LINE + "give faceapp-cli gallery key import the file faceapp-cli gallery key export wrote",
    Fix.REPLACE_KEY: COMMAND_LINE + "faceapp-cli gallery key import FILE --replace, if the gallery was given a new key",
}
"""The app's wording of every fix. Those it cannot carry out itself name the command that does."""


def for_gui(error: BaseException | str) -> str:
    """``error`` in the app's words: its problem, then its fix as the app words it.

    Args:
        error: an error (a :class:`~faceapp.errors.FaceappError` with a fix is worded anew)
            or a text, shown as it is.

    Returns:
        One line for a message box, the status bar or a notice.
    """
    if isinstance(error, FaceappError) and error.fix is not None:
        return f"{error.problem}; {WORDS[error.fix].format(**error.details)}"
    return str(error)
