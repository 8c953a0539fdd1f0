"""Envelope encryption of a gallery's biometric data, and crypto-shredding.

Every person has a random 256-bit data key. Their name, their templates' embeddings, face
crops, source file names and quality measures, negative samples and those samples' crops
are sealed with it (AES-256-GCM, a random 96-bit
nonce per value). The data key is kept in the person's row, wrapped (sealed) by the gallery
key (:mod:`faceapp.gallery.keys`), which never enters the gallery.

The associated data of every sealed value names the gallery, the person, the kind of value
and its row, so a ciphertext copied to another row, person, kind or gallery fails to open
(as does any changed byte). Removing a person deletes their wrapped data key: every copy of
their sealed data that survives anywhere (free pages, a write-ahead log, a PostgreSQL
table file, a replica, a backup) can no longer be opened by faceapp; only someone who kept
both such a copy of the wrapped key and the gallery key could.

A sealed value is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from typing import Any

from faceapp.errors import Fix, GalleryError, WrongKeyError

NONCE = 12
KEY_BYTES = 32
_CHECK = b"faceapp gallery key check v1"
_INDEX = b"faceapp index cache key v1"  # derives the key of the saved index files
_NOBODY = b"faceapp unknown faces key v1"  # derives the key of unknown faces' event snapshots
_NAMES = b"faceapp name lookup key v1"  # derives the key of the names' keyed hashes
NAME = "name"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
NOBODY = 0  # the person id of an unknown face (row ids are positive)
SNAPSHOT = "snapshot"

# What a sealed value is: part of its associated data.
TEMPLATE = "template"
TEMPLATE_CROP = "template-crop"
TEMPLATE_SOURCE = "template-source"
TEMPLATE_QUALITY = "template-quality"
NEGATIVE = "negative"
NEGATIVE_CROP = "negative-crop"
DATA_KEY = "data-key"
REPAIRABLE = frozenset({TEMPLATE, NEGATIVE})  # vectors `check` makes again from their crops


class TamperedError(GalleryError):
    """A sealed value failed its authentication check: changed, damaged, or moved from another row."""


def _aead(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


class GalleryCrypto:
    """Seals and opens a gallery's values with per-person data keys wrapped by the gallery key.

    Args:
        gallery_key: the gallery's 32-byte key.
        gallery_id: the gallery's id (bound to every sealed value).
        location: the gallery as shown in messages.
    """

    def __init__(self, gallery_key: bytes, gallery_id: str, location: str) -> None:
        if len(gallery_key) != KEY_BYTES:
            raise WrongKeyError(f"the key of gallery {location} has the wrong length; import the right key")
        self.gallery_id = gallery_id
        self.location = location
        self._wrap = _aead(gallery_key)
        self._check = hmac.new(gallery_key, _CHECK + gallery_id.encode(), hashlib.sha256).hexdigest()[:32]
        self._names = hmac.new(gallery_key, _NAMES + gallery_id.encode(), hashlib.sha256).digest()
        self.index_key = hmac.new(gallery_key, _INDEX + gallery_id.encode(), hashlib.sha256).digest()
        # Person 0 stands for "nobody": snapshots of unknown faces are sealed with a key of the gallery's.
        self._people: dict[int, Any] = {NOBODY: _aead(hmac.new(gallery_key, _NOBODY + gallery_id.encode(),
                                                                hashlib.sha256).digest())}
        self._mutex = threading.Lock()

    @property
    def check_value(self) -> str:
        """A value kept in the gallery that tells whether a key is its key (reveals nothing of it)."""
        return self._check

    def verify(self, stored: str) -> None:
        """Raise :class:`WrongKeyError` unless this key is the one that wrote ``stored``."""
        if not hmac.compare_digest(stored, self._check):
            raise WrongKeyError(
                f"the key this device holds for gallery {self.location} is not the gallery's key; nothing was "
                "changed", Fix.IMPORT_RIGHT_KEY)

    def name_key(self, name: str) -> str:
        """The keyed hash a person is found by: HMAC-SHA256 of the normalised name with ASCII
        letters in lower case, as a folder gallery's ``NOCASE`` compares names (other look-alike
        names are refused by the gallery's confusables check); reveals nothing without the gallery key."""
        folded = name.translate(_ASCII_LOWER)
        return hmac.new(self._names, folded.encode("utf-8"), hashlib.sha256).hexdigest()

    def _ad(self, person_id: int, kind: str, row_id: int) -> bytes:
        return f"faceapp|{self.gallery_id}|{int(person_id)}|{kind}|{int(row_id)}".encode()

    def new_data_key(self, person_id: int) -> bytes:
        """A new data key for ``person_id``, wrapped (what the person's row keeps); made usable."""
        key = secrets.token_bytes(KEY_BYTES)
        with self._mutex:
            self._people[int(person_id)] = _aead(key)
        nonce = secrets.token_bytes(NONCE)
        return nonce + self._wrap.encrypt(nonce, key, self._ad(person_id, DATA_KEY, person_id))

    def rewrap(self, person_id: int, wrapped: bytes, other: GalleryCrypto) -> bytes:
        """``person_id``'s wrapped data key, wrapped again by ``other``'s gallery key."""
        key = self._unwrap(person_id, wrapped)
        nonce = secrets.token_bytes(NONCE)
        return nonce + other._wrap.encrypt(nonce, key, other._ad(person_id, DATA_KEY, person_id))

    def _unwrap(self, person_id: int, wrapped: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        blob = bytes(wrapped)
        try:
            return bytes(self._wrap.decrypt(blob[:NONCE], blob[NONCE:], self._ad(person_id, DATA_KEY, person_id)))
        except (InvalidTag, ValueError) as exc:
            raise TamperedError(
                f"the data key of person {person_id} in gallery {self.location} failed its authentication check "
                "(changed or damaged); restore the gallery from a backup") from exc

    def person(self, person_id: int, wrapped: bytes | None) -> Any | None:
        """The opened data key of ``person_id`` (``None`` for a person not yet encrypted)."""
        pid = int(person_id)
        with self._mutex:
            found = self._people.get(pid)
        if found is not None or wrapped is None:
            return found
        aead = _aead(self._unwrap(pid, wrapped))
        with self._mutex:
            self._people[pid] = aead
        return aead

    def forget(self, person_id: int) -> None:
        """Drop ``person_id``'s opened data key from memory (after a removal)."""
        with self._mutex:
            self._people.pop(int(person_id), None)

    def seal(self, person_id: int, kind: str, row_id: int, data: bytes | None) -> bytes | None:
        """``data`` sealed with the person's data key (``None`` stays ``None``)."""
        if data is None:
            return None
        with self._mutex:
            aead = self._people[int(person_id)]
        nonce = secrets.token_bytes(NONCE)
        return nonce + aead.encrypt(nonce, bytes(data), self._ad(person_id, kind, row_id))

    def open_rows(self, kind: str, rows: list[tuple[int, int, bytes]]) -> list[bytes | None]:
        """Many sealed values of one kind, opened: ``(person id, row id, sealed)`` in, the value
        or ``None`` (it fails its authentication check) out. The fast path of index building."""
        from cryptography.exceptions import InvalidTag

        with self._mutex:
            people = dict(self._people)
        prefix = f"faceapp|{self.gallery_id}|"
        out: list[bytes | None] = []
        for pid, rid, blob in rows:
            try:
                out.append(people[pid].decrypt(blob[:NONCE], blob[NONCE:], f"{prefix}{pid}|{kind}|{rid}".encode()))
            except (InvalidTag, ValueError):
                out.append(None)
        return out

    def open(self, person_id: int, kind: str, row_id: int, blob: bytes | None) -> bytes | None:
        """A sealed value opened (``None`` stays ``None``).

        Raises:
            TamperedError: it fails its authentication check.
        """
        if blob is None:
            return None
        from cryptography.exceptions import InvalidTag

        with self._mutex:
            aead = self._people[int(person_id)]
        data = bytes(blob)
        try:
            return bytes(aead.decrypt(data[:NONCE], data[NONCE:], self._ad(person_id, kind, row_id)))
        except (InvalidTag, ValueError) as exc:
            raise TamperedError(
                f"a stored {kind.replace('-', ' ')} (row {row_id}) of gallery {self.location} failed its "
                "authentication check (changed, damaged, or copied from another row)",
                Fix.CHECK_TEMPLATES if kind in REPAIRABLE else None
            ) from exc
