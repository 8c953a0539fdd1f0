"""Gallery keys: one random 256-bit key per gallery id, kept on this device, never in the gallery.

A gallery's key wraps the data key of every person in it (see :mod:`faceapp.gallery.crypto`).
It is kept in the operating system's keyring (Secret Service, macOS Keychain, Windows
Credential Manager, through ``keyring``) when the system has one, otherwise in a private
file (``0600`` in a ``0700`` folder) in the user's config folder (``platformdirs``, or beside
``FACEAPP_CONFIG``). A copied gallery folder, a database backup or a replica is therefore
useless alone.

A key file may be protected by a passphrase (scrypt, memory-hard, then AES-256-GCM). The
passphrase of a protected key kept on this device is read from ``FACEAPP_KEY_PASSPHRASE``
or asked for in a terminal. ``faceapp-cli gallery key export`` / ``import`` move a key to
another device (a shared PostgreSQL gallery's key is never stored on the server).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import getpass
import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceapp import private
from faceapp.errors import FaceappError, Fix, GalleryKeyError, KeyMissingError, WrongKeyError

log = logging.getLogger(__name__)


class WrongPassphraseError(WrongKeyError):
    """The passphrase given does not unseal the key this device keeps (the key itself may be right)."""

KEY_BYTES = 32
FORMAT = "faceapp-gallery-key"
SERVICE = "faceapp-gallery"
PASSPHRASE_ENV = "FACEAPP_KEY_PASSPHRASE"
# scrypt at 2**17 x 8 x 1 uses 128 MiB and about a third of a second: costly to guess at scale.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 17, 8, 1


def keys_dir() -> Path:
    """The private folder of key files: ``FACEAPP_KEYS_DIR``, or ``keys`` beside the settings file."""
    env = os.environ.get("FACEAPP_KEYS_DIR")
    if env:
        return Path(env).expanduser()
    from faceapp.config import settings_path

    return settings_path().parent / "keys"


def _keyring() -> Any | None:
    """The system keyring when a real one is available (not the fail or null backend)."""
    if os.environ.get("FACEAPP_NO_KEYRING"):
        return None
    if sys.platform.startswith("linux") and not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return None  # no session bus, no Secret Service (and no probing of backends that start programs)
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    try:
        ring = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring configuration is no keyring
        return None
    if isinstance(ring, fail.Keyring) or getattr(ring, "priority", 0) <= 0:
        return None
    return ring


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    return base64.b64decode(str(text), validate=True)


def encode_key(gallery_id: str, key: bytes, passphrase: str | None = None) -> bytes:
    """A key file's contents: the key in the clear or sealed with a passphrase.

    Args:
        gallery_id: the gallery the key opens (bound to the sealed key).
        key: the 32-byte gallery key.
        passphrase: protect the key with it (scrypt, then AES-256-GCM); ``None``: plain.
    """
    doc: dict[str, Any] = {"format": FORMAT, "version": 1, "gallery_id": gallery_id}
    if passphrase is None:
        doc["key"] = _b64(key)
    else:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        wrap = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        doc["kdf"] = {"name": "scrypt", "salt": _b64(salt), "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
        doc["nonce"] = _b64(nonce)
        doc["sealed"] = _b64(AESGCM(wrap).encrypt(nonce, key, gallery_id.encode("utf-8")))
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True)
class KeyFile:
    """A parsed key file.

    Attributes:
        gallery_id: the gallery the key opens.
        protected: the key is sealed with a passphrase.
        doc: the parsed document.
    """

    gallery_id: str
    protected: bool
    doc: dict[str, Any]

    def key(self, passphrase: str | None) -> bytes:
        """The gallery key, unsealed with ``passphrase`` when protected.

        Raises:
            KeyMissingError: the key is protected and no passphrase was given.
            WrongKeyError: the passphrase is wrong.
        """
        if not self.protected:
            return _unb64(self.doc["key"])
        if passphrase is None:
            raise KeyMissingError(f"the key of gallery {self.gallery_id} is protected by a passphrase; "
                                  f"give it (set {PASSPHRASE_ENV} or run in a terminal)")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kdf = self.doc["kdf"]
        wrap = _derive(passphrase, _unb64(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
        try:
            return AESGCM(wrap).decrypt(_unb64(self.doc["nonce"]), _unb64(self.doc["sealed"]),
                                        self.gallery_id.encode("utf-8"))
        except InvalidTag as exc:
            raise WrongPassphraseError(f"wrong passphrase for the key of gallery {self.gallery_id}; "
                                "nothing was changed: try again") from exc


def decode_key(data: bytes, where: str) -> KeyFile:
    """Parse a key file's contents.

    Raises:
        GalleryKeyError: ``data`` is not a faceapp gallery key.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a faceapp gallery key")
        protected = "sealed" in doc
        kf = KeyFile(str(doc["gallery_id"]), protected, doc)
        if not protected and len(_unb64(doc["key"])) != KEY_BYTES:
            raise ValueError("the key has the wrong length")
        return kf
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
        raise GalleryKeyError(f"{where} is not a faceapp gallery key ({exc})", Fix.EXPORT_KEY_AGAIN) from exc


# Keys this process has unsealed with their passphrase, by the sealed file they came from (a new
# file, after a rekey or an import, asks again): a passphrase is asked for once per run, as a
# password manager unlocks once per session. The key is in memory anyway while its gallery is open.
_UNSEALED: dict[tuple[str, str], bytes] = {}
_UNSEALED_LOCK = threading.Lock()


def forget_unsealed() -> None:
    """Forget the keys unsealed so far (the next opening asks for the passphrase again)."""
    with _UNSEALED_LOCK:
        _UNSEALED.clear()


_GIVEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("faceapp_key_passphrase", default=None)


@contextlib.contextmanager
def given_passphrase(passphrase: str) -> Iterator[None]:
    """``passphrase`` answers :func:`ask_passphrase` inside the block only (this thread's context).

    For a face with no terminal (the desktop app asks in a dialog): the passphrase stays in
    memory, out of the environment that child processes would inherit, and is gone after the block.
    """
    token = _GIVEN.set(passphrase)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def ask_passphrase(prompt: str, *, confirm: bool = False) -> str | None:
    """A passphrase given with :func:`given_passphrase`, from ``FACEAPP_KEY_PASSPHRASE``, or,
    in a terminal, typed (twice with ``confirm``)."""
    given = _GIVEN.get()
    if given is not None:
        return given
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise GalleryKeyError("the two passphrases differ; nothing was changed: try again")
    return first


class KeyStore:
    """Where this device keeps gallery keys: the system keyring, else private files.

    Args:
        folder: the key files' folder (default :func:`keys_dir`).
        use_keyring: use the system keyring when one is available.
    """

    def __init__(self, folder: Path | None = None, *, use_keyring: bool = True) -> None:
        self.folder = folder if folder is not None else keys_dir()
        self._ring = _keyring() if use_keyring else None

    def _file(self, gallery_id: str) -> Path:
        if not gallery_id.isalnum():
            raise GalleryKeyError(f"{gallery_id!r} is not a gallery id")
        return self.folder / f"{gallery_id}.key"

    def where(self, gallery_id: str) -> str:
        """Where the key of ``gallery_id`` is (or would be) kept, in words."""
        if self._ring is not None and self._ring.get_password(SERVICE, gallery_id) is not None:
            return f"the system keyring ({type(self._ring).__name__})"
        return str(self._file(gallery_id))

    def has(self, gallery_id: str) -> bool:
        """Whether this device holds the key of ``gallery_id``."""
        if self._ring is not None and self._ring.get_password(SERVICE, gallery_id) is not None:
            return True
        return self._file(gallery_id).exists()

    def read(self, gallery_id: str) -> KeyFile | None:
        """The stored key of ``gallery_id``, ``None`` when this device has none."""
        if self._ring is not None:
            text = self._ring.get_password(SERVICE, gallery_id)
            if text is not None:
                return decode_key(text.encode("utf-8"), "the keyring's entry")
        path = self._file(gallery_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise GalleryKeyError(f"cannot read the gallery key {path} ({exc.strerror}); check its permissions") from exc
        return decode_key(data, str(path))

    def load(self, gallery_id: str, what: str) -> bytes:
        """The key of ``gallery_id`` (asking for its passphrase when protected).

        Args:
            gallery_id: the gallery's id.
            what: the gallery as shown in messages.

        Raises:
            KeyMissingError: this device has no key for the gallery.
            WrongKeyError: the passphrase is wrong.
        """
        kf = self.read(gallery_id)
        if kf is None:
            raise KeyMissingError(
                f"this device does not have the key of gallery {what} (id {gallery_id})", Fix.IMPORT_KEY)
        if not kf.protected:
            return kf.key(None)
        sealed = (gallery_id, json.dumps(kf.doc, sort_keys=True))
        with _UNSEALED_LOCK:
            key = _UNSEALED.get(sealed)
        if key is None:
            key = kf.key(ask_passphrase(f"passphrase of the key of gallery {what}: "))
            with _UNSEALED_LOCK:
                _UNSEALED[sealed] = key
        return key

    def save(self, gallery_id: str, key: bytes, passphrase: str | None = None) -> str:
        """Keep ``key`` for ``gallery_id`` (replacing any), protected by ``passphrase`` if given.

        Returns:
            Where it is kept, in words.
        """
        data = encode_key(gallery_id, key, passphrase)
        if self._ring is not None and passphrase is None:
            try:
                self._ring.set_password(SERVICE, gallery_id, data.decode("utf-8"))
                return f"the system keyring ({type(self._ring).__name__})"
            except Exception as exc:  # noqa: BLE001 - a locked or broken keyring: fall back to the file
                log.warning("could not keep the gallery key in the system keyring (%s); kept in a private file", exc)
        path = self._file(gallery_id)
        try:
            private.make_private_dir(self.folder)
            private.write_atomically(path, data)
        except OSError as exc:
            raise GalleryKeyError(f"cannot write the gallery key to {path} ({exc.strerror}); "
                                  "check the permissions of that folder") from exc
        return str(path)

    def restore(self, kept: KeyFile) -> None:
        """Keep again a key as :meth:`read` gave it (protected or not)."""
        text = (json.dumps(kept.doc, indent=1) + "\n").encode("utf-8")
        if self._ring is not None and not kept.protected:
            self._ring.set_password(SERVICE, kept.gallery_id, text.decode("utf-8"))
            return
        private.write_atomically(self._file(kept.gallery_id), text)

    def create(self, gallery_id: str) -> bytes:
        """A new random key for ``gallery_id``, kept; the key already kept when another process
        of this user made one first (several processes may open a new gallery at once).

        Raises:
            GalleryKeyError: the key cannot be written.
        """
        key = secrets.token_bytes(KEY_BYTES)
        if self._ring is not None:
            if self._ring.get_password(SERVICE, gallery_id) is None:
                self.save(gallery_id, key)
            return self.load(gallery_id, gallery_id)
        path = self._file(gallery_id)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.new")
        try:
            private.make_private_dir(self.folder)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, private.FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(encode_key(gallery_id, key))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # atomic, and refused when another process kept its key first
            except FileExistsError:
                return self.load(gallery_id, gallery_id)
            private.fsync_dir(self.folder)
            return key
        except OSError as exc:
            raise GalleryKeyError(f"cannot write the gallery key to {path} ({exc.strerror}); "
                                  "check the permissions of that folder") from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()


def export_key(store: KeyStore, gallery_id: str, what: str, dest: Path, passphrase: str | None) -> None:
    """Write the key of ``gallery_id`` to ``dest`` (``0600``), sealed with ``passphrase`` if given."""
    key = store.load(gallery_id, what)
    try:
        private.write_atomically(Path(dest), encode_key(gallery_id, key, passphrase))
    except OSError as exc:
        raise FaceappError(f"cannot write {dest} ({exc.strerror}); choose another file") from exc


def import_key(store: KeyStore, source: Path, passphrase: str | None, *, replace: bool = False,
               keep_passphrase: bool = False) -> tuple[str, str]:
    """Keep the key in file ``source`` on this device.

    A different key this device already holds for the same gallery is replaced only with
    ``replace`` (after ``gallery rekey`` on another device): a key is never lost by mistake.
    With ``keep_passphrase`` a protected key stays protected by its passphrase on this device.

    Returns:
        ``(gallery id, where it is kept)``.

    Raises:
        GalleryKeyError: the file is not a key, or its passphrase is wrong or missing.
    """
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise GalleryKeyError(f"cannot read {source} ({exc.strerror})", Fix.KEY_FILE) from exc
    kf = decode_key(data, str(source))
    key = kf.key(passphrase if kf.protected else None)
    held = store.read(kf.gallery_id)
    if held is not None and not held.protected and held.key(None) != key and not replace:
        raise GalleryKeyError(f"this device already holds another key for gallery {kf.gallery_id}; nothing was "
                              "changed", Fix.REPLACE_KEY)
    return kf.gallery_id, store.save(kf.gallery_id, key, passphrase if keep_passphrase and kf.protected else None)
