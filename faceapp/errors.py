"""Typed errors with messages a user can act on.

Every error the core raises for a bad input or a broken environment is a
:class:`FaceappError`. Its message is one line that says what went wrong and what to do;
the CLI prints it as it is and exits with :attr:`FaceappError.exit_code`.
"""

from __future__ import annotations


class FaceappError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is one actionable line."""

    exit_code = 2


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
