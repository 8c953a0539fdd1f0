"""Typed errors with messages a user can act on.

Every error the core raises for a bad input or a broken environment is a
:class:`FaceappError`. Its message is one line that says what went wrong and what to do;
the CLI prints it as it is and exits with :attr:`FaceappError.exit_code`.
"""

from __future__ import annotations

import enum


class Fix(enum.Enum):
    """What the user can do about an error: named by the core, worded by each face for itself.

    The value is the command line's wording (and the library's: ``str(err)`` uses it); the
    desktop app has its own wording for each member (:mod:`faceapp.gui.messages`). A value may
    name fields (``{match}``) that the error's ``details`` fill in.
    """

    SEE_PEOPLE = "see `faceapp-cli list`"
    ADD_TO_THEM = "use --add to add these photos to them"
    ADD_OR_RENAME = "use --add to add these photos to them or choose another name"
    ADD_OR_DESPITE = "add them to {match!r} with --add, or use --despite-match if {name!r} is someone else"
    REEMBED = "run `faceapp-cli reembed` to rebuild them with this model"
    REEMBED_OR_OLD_MODEL = "run `faceapp-cli reembed` to rebuild them with this model, or use the model they were made with"
    REEMBED_FIRST = "run `faceapp-cli reembed` on it first"
    FINISH_COPY = "run `faceapp-cli gallery copy {source} {target}` again to finish it"
    CHECK_TEMPLATES = "run `faceapp-cli check` to list them and embed them again from their face crops"
    CHECK_MODEL_OUTPUT = "run `faceapp-cli info` to check the model"
    CHOOSE_MODEL = "check --model"
    CALIBRATE = "run `faceapp-cli calibrate`"
    CHOOSE_MODEL_OR_REINSTALL = "check --model or reinstall faceapp"
    PROVIDER_AUTO_OR_CPU = "use --provider auto or cpu"
    PROVIDER_CPU = "use --provider cpu"
    CUDA_OR_AUTO = "install onnxruntime-gpu or use --provider auto or cpu"
    OPENVINO_OR_AUTO = "pip install 'faceapp[openvino]' or use --provider auto or cpu"
    IMPORT_RIGHT_KEY = "import the right one with `faceapp-cli gallery key import FILE`"
    IMPORT_KEY = "import it with `faceapp-cli gallery key import FILE` from a device that has it (`gallery key export FILE`)"
    EXPORT_KEY_AGAIN = "export it again with `faceapp-cli gallery key export`"
    KEY_FILE = "give the file written by `faceapp-cli gallery key export`"
    REPLACE_KEY = "add --replace if the gallery was given a new key (`gallery rekey`)"


class FaceappError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is one actionable line.

    Args:
        problem: what went wrong (and what was or was not changed), with no hint in a face's words.
        fix: what to do about it, if anything; each face words it (``str`` gives the command line's).
        details: the fields ``fix``'s wording names.
    """

    exit_code = 2

    def __init__(self, problem: str = "", fix: Fix | None = None, **details: object) -> None:
        self.problem = problem
        self.fix = fix
        self.details = details
        super().__init__(f"{problem}; {fix.value.format(**details)}" if fix is not None else problem)


class ImageError(FaceappError):
    """A file is missing, unreadable, not an image, or damaged."""


class NoFaceError(FaceappError):
    """No face was found where one was needed."""


class ManyFacesError(FaceappError):
    """Several faces were found where exactly one was needed."""


class ModelError(FaceappError):
    """A model file is missing, damaged, tampered with, or not usable."""


class GalleryError(FaceappError):
    """The gallery cannot be opened, read or written."""


class GalleryLockedError(GalleryError):
    """Another process holds the gallery's write lock for too long."""


class GalleryFullError(GalleryError):
    """The disk holding the gallery is full; nothing was changed."""


class GalleryReadOnlyError(GalleryError):
    """The gallery can be read but not written (read-only folder or medium)."""


class GalleryUnavailableError(GalleryError):
    """The gallery's server cannot be reached; nothing was changed."""


class GalleryMismatchError(GalleryError):
    """The gallery holds templates of another embedder; re-embed or use that model."""


class UnknownPersonError(FaceappError):
    """A name that is not in the gallery."""


class DuplicatePersonError(FaceappError):
    """A name that is already in the gallery."""


class SettingsError(FaceappError):
    """The settings file or a setting's value is invalid."""


class GalleryKeyError(FaceappError):
    """The gallery's key cannot be used: missing on this device, wrong, or behind a passphrase."""


class KeyMissingError(GalleryKeyError):
    """This device does not hold the gallery's key (import it from a device that does)."""


class WrongKeyError(GalleryKeyError):
    """The key or passphrase given is not the one the gallery was encrypted with."""
