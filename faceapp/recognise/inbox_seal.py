"""Encryption of the unknown-faces inbox: a data key per group, wrapped by a key kept off the inbox.

The inbox key is a random 256-bit key kept where this device keeps gallery keys
(:class:`~faceapp.gallery.keys.KeyStore`: the system keyring, else a private file in the user's
config folder), under the inbox's own random id. The inbox file keeps only that id and a check
value that tells whether a key is its key, so a copy of the gallery folder, or of the inbox
file alone, shows no face.

Each group of unknown faces has a random data key, wrapped by the inbox key and kept in the
group's row. Every face's embedding and crop and every group's mean face are sealed with their
group's key (AES-256-GCM); the associated data names the inbox, the group, the kind of value
and its row, so a value copied to another row, group, kind or inbox fails to open.
:class:`~faceapp.gallery.crypto.GalleryCrypto` does the sealing, a group standing where a gallery
has a person. Dismissing, naming or expiring a group deletes its wrapped data key with its rows
(crypto-shredding): a copy of its faces left anywhere can no longer be opened.

An inbox written before it was encrypted is erased when opened (unknown faces are transient:
they are collected again as they are seen), with one warning.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from faceapp.errors import GalleryError, KeyMissingError, WrongKeyError
from faceapp.gallery.crypto import GalleryCrypto, TamperedError
from faceapp.gallery.keys import KeyStore
from faceapp.gallery.sqlite_store import truncate_wal

log = logging.getLogger(__name__)

# What a sealed value is: part of its associated data.
EMBEDDING = "inbox-embedding"  # a face's (D,) float32 embedding; row: the face
CROP = "inbox-crop"  # a face's JPEG crop; row: the face
CENTROID = "inbox-centroid"  # a group's (D,) float32 mean face; row: the group

META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


def erase_plain(db: sqlite3.Connection, path: Path) -> int:
    """Erase an inbox written before it was encrypted (its groups have no data key).

    The tables are dropped (``secure_delete`` zeroes their pages), the file is vacuumed and
    its write-ahead log emptied.

    Returns:
        How many faces were erased (0: the inbox was not a plain one).
    """
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(groups)")}
    if not columns or "data_key" in columns:
        return 0
    [(n,)] = db.execute("SELECT COUNT(*) FROM faces").fetchall()
    with transaction(db):
        db.execute("DROP TABLE IF EXISTS faces")
        db.execute("DROP TABLE groups")
    db.execute("VACUUM")
    truncate_wal(db, "the unknown-faces inbox")
    log.warning("the unknown-faces inbox %s was kept unencrypted by an earlier version: its %d face(s) were "
                "erased, and faces are collected again, encrypted, as they are seen", path, int(n))
    return int(n)


class InboxSeal:
    """Seals and opens an inbox's values under per-group data keys wrapped by the inbox key.

    Args:
        key: the inbox key (32 bytes).
        inbox_id: the inbox's id (bound to every sealed value).
        path: the inbox file, as shown in messages.
    """

    def __init__(self, key: bytes, inbox_id: str, path: Path) -> None:
        self.path = path
        self._crypto = GalleryCrypto(key, inbox_id, str(path))

    @classmethod
    def of(cls, db: sqlite3.Connection, path: Path, keys: KeyStore) -> InboxSeal:
        """The seal of the inbox in ``db``; a new inbox is given an id and a key (kept by ``keys``).

        Raises:
            KeyMissingError: this device has no key for the inbox.
            WrongKeyError: the key this device holds is not the inbox's.
            GalleryKeyError: the key cannot be read or written.
        """
        db.execute(META_SCHEMA)
        with transaction(db):
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if "inbox_id" not in meta:
                inbox_id = f"inbox{secrets.token_hex(16)}"
                seal = cls(keys.create(inbox_id), inbox_id, path)  # kept before the commit: never an inbox without its key
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("inbox_id", inbox_id), ("key_check", seal._crypto.check_value)])
                return seal
        inbox_id, check = str(meta["inbox_id"]), str(meta.get("key_check", ""))
        if keys.read(inbox_id) is None:
            raise KeyMissingError(
                f"this device does not hold the key of the unknown-faces inbox {path} (the file was copied from "
                "another device, or its key was removed), so its faces cannot be read; delete that file to start "
                "an empty inbox")
        seal = cls(keys.load(inbox_id, f"the unknown-faces inbox {path}"), inbox_id, path)
        if not hmac.compare_digest(check, seal._crypto.check_value):
            raise WrongKeyError(
                f"the key this device holds for the unknown-faces inbox {path} is not the one its faces were "
                "encrypted with; delete that file to start an empty inbox")
        return seal

    def new_group(self, group_id: int) -> bytes:
        """A new data key for group ``group_id``, made usable; returns it wrapped (what its row keeps)."""
        return self._crypto.new_data_key(group_id)

    def forget(self, group_id: int) -> None:
        """Drop group ``group_id``'s opened data key from memory (the group was erased)."""
        self._crypto.forget(group_id)

    def seal(self, db: sqlite3.Connection, group_id: int, kind: str, row_id: int, data: bytes | None) -> bytes | None:
        """``data`` sealed with group ``group_id``'s data key (``None`` stays ``None``)."""
        self._usable(db, group_id)
        return self._crypto.seal(group_id, kind, row_id, data)

    def open(self, db: sqlite3.Connection, group_id: int, kind: str, row_id: int, blob: bytes | None) -> bytes | None:
        """A value sealed by :meth:`seal`, opened (``None`` stays ``None``).

        Raises:
            GalleryError: it fails its authentication check.
        """
        try:
            self._usable(db, group_id)
            return self._crypto.open(group_id, kind, row_id, blob)
        except TamperedError as exc:
            raise self._tampered(group_id) from exc

    def open_all(self, db: sqlite3.Connection, kind: str, rows: Sequence[tuple[int, int, bytes]]) -> list[bytes]:
        """Many sealed values of one kind, opened: ``(group id, row id, sealed)`` in, the values out
        (the fast path of grouping, which compares a face with every group's mean).

        Raises:
            GalleryError: one fails its authentication check.
        """
        for group_id in {g for g, _, _ in rows}:
            self._usable(db, group_id)
        opened = self._crypto.open_rows(kind, [(g, r, bytes(b)) for g, r, b in rows])
        for (group_id, _, _), value in zip(rows, opened, strict=True):
            if value is None:
                raise self._tampered(group_id)
        return [bytes(v) for v in opened if v is not None]

    def _tampered(self, group_id: int) -> GalleryError:
        return GalleryError(
            f"a stored unknown face (group {group_id}) in {self.path} failed its authentication check (changed, "
            "damaged, or copied from another row); dismiss that group, or delete that file to start an empty inbox")

    def _usable(self, db: sqlite3.Connection, group_id: int) -> None:
        if self._crypto.person(group_id, None) is not None:
            return
        row = db.execute("SELECT data_key FROM groups WHERE id = ?", (int(group_id),)).fetchone()
        if row is None:
            raise GalleryError(f"the inbox has no group {group_id}; it may have been dismissed or expired")
        self._crypto.person(group_id, bytes(row[0]))


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction on ``db`` (autocommit connection): committed, or rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
