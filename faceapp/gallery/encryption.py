"""A SQL gallery's encryption at rest: its people's data keys, and the gallery key's life.

:class:`DataKeys` holds what this process has opened (the gallery's
:class:`~faceapp.gallery.crypto.GalleryCrypto`, each person's data key) and seals and opens
stored values and names with them. :class:`Encryptor` gives a gallery its key (or opens it),
encrypts a gallery written before encryption person by person, and gives it a new key.
:class:`~faceapp.gallery.sql_store.SQLStore` uses both.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from faceapp.gallery import crypto as seal
from faceapp.gallery import integrity
from faceapp.gallery.crypto import GalleryCrypto, TamperedError
from faceapp.gallery.sql_dialect import Dialect, Row, Tx, as_bytes, state_from_row

if TYPE_CHECKING:
    from faceapp.gallery.keys import KeyStore

log = logging.getLogger(__name__)

_WRAPPED_SQL = "SELECT id, data_key FROM persons WHERE data_key IS NOT NULL"
# ``persons.seal_level``: what of an encrypted person is sealed. NULL (written before it was
# kept): their name, embeddings and crops; FIELDS_SEALED: also their templates' source file
# names and quality measures. A person with no data key has nothing sealed.
FIELDS_SEALED = 2
# A person whose data is not all sealed yet (:meth:`Encryptor.encrypt_existing` seals it).
_UNSEALED = f"(data_key IS NULL OR seal_level IS NULL OR seal_level < {FIELDS_SEALED})"


class DataKeys:
    """The data keys of a gallery's people as opened in this process; seals and opens values with them.

    A person whose row has no data key yet (a gallery written before encryption, or one read
    without its key) is read and written in the clear.

    Args:
        db: the database the wrapped data keys are read from.

    Attributes:
        crypto: the gallery's key in use (``None``: the gallery is not encrypted, or not yet opened).
    """

    def __init__(self, db: Dialect) -> None:
        self.db = db
        self.crypto: GalleryCrypto | None = None
        self._wrapped: dict[int, bytes] = {}  # person id -> wrapped data key, as last read
        self._sealed: set[int] = set()  # people whose data key is open in ``crypto``
        self._names: dict[tuple[int, str], str] = {}  # (person, sealed name) -> name, as opened

    def use(self, crypto: GalleryCrypto) -> None:
        """Seal and open with ``crypto`` from now on (what was opened with another key is dropped)."""
        self.crypto, self._wrapped, self._sealed, self._names = crypto, {}, {seal.NOBODY}, {}

    def sealed(self, pid: Any) -> bool:
        """Whether values of person ``pid`` are sealed (their data key is open)."""
        return self.crypto is not None and int(pid) in self._sealed

    def open_keys(self, pids: Any, tx: Tx | None = None) -> None:
        """Open the data keys of the encrypted people among ``pids`` (read from ``tx`` when given)."""
        if self.crypto is None:
            return
        want = {int(p) for p in pids} - self._sealed
        if not want:
            return
        if tx is not None or not want <= self._wrapped.keys():
            rows = tx.rows(_WRAPPED_SQL) if tx is not None else self.db.rows(_WRAPPED_SQL)
            self._wrapped.update({int(p): as_bytes(w) for p, w in rows})
        for pid in want & self._wrapped.keys():
            self.crypto.person(pid, self._wrapped[pid])
            self._sealed.add(pid)

    def new_person(self, pid: int) -> bytes | None:
        """A data key for the new person ``pid``, wrapped as their row keeps it (``None``: not encrypted)."""
        if self.crypto is None:
            return None
        wrapped = self.crypto.new_data_key(pid)
        self._wrapped[pid] = wrapped
        self._sealed.add(pid)
        return wrapped

    def adopt(self, pid: int) -> None:
        """Seal person ``pid``'s values from now on (their data key was just made in ``crypto``)."""
        self._sealed.add(int(pid))

    def forget(self, pid: int) -> None:
        """Drop person ``pid``'s opened data key from memory (after a removal, or a failed encryption)."""
        self._wrapped.pop(int(pid), None)
        self._sealed.discard(int(pid))
        self._names.clear()
        if self.crypto is not None:
            self.crypto.forget(pid)

    def seal(self, pid: int, kind: str, row_id: int, data: bytes | None) -> bytes | None:
        """``data`` sealed with person ``pid``'s data key, bound to ``kind`` and ``row_id`` (as it is
        for a person not encrypted)."""
        if not self.sealed(pid):
            return data
        assert self.crypto is not None
        return self.crypto.seal(pid, kind, row_id, data)

    def open(self, pid: int, kind: str, row_id: int, value: Any) -> bytes | None:
        """A stored value in the clear (raises :class:`TamperedError` when it fails authentication)."""
        if value is None:
            return None
        if not self.sealed(pid):
            return as_bytes(value)
        assert self.crypto is not None
        return self.crypto.open(pid, kind, row_id, as_bytes(value))

    def vector(self, pid: int, kind: str, row_id: int, value: Any, crc: int | None,
               dim: int | None) -> tuple[bytes | None, bool]:
        """``(vector bytes or None when damaged, whether it failed authentication)``."""
        try:
            data = self.open(pid, kind, row_id, value)
        except TamperedError:
            return None, True
        assert data is not None
        return (data if integrity.intact(int(row_id), data, None if self.sealed(pid) else crc, dim) else None), False

    def open_rows(self, kind: str, rows: list[tuple[int, int, bytes]]) -> list[bytes | None]:
        """Sealed values of one kind, opened (see :meth:`GalleryCrypto.open_rows`)."""
        return self.crypto.open_rows(kind, rows) if self.crypto is not None and rows else []

    def level(self, pid: int) -> int | None:
        """The ``seal_level`` a row of person ``pid`` written now gets (``None``: nothing sealed)."""
        return FIELDS_SEALED if self.sealed(pid) else None

    def seal_text(self, pid: int, kind: str, row_id: int, text: str | None, level: Any) -> str | None:
        """A text value of person ``pid`` as its column keeps it: sealed (base64) when the person's
        ``level`` (their ``seal_level``) seals template fields, else as it is."""
        if text is None or not self._fields_sealed(pid, level):
            return text
        return self._seal_text(pid, kind, row_id, text)

    def open_text(self, pid: int, kind: str, row_id: int, stored: str | None, level: Any) -> str | None:
        """A text value written by :meth:`seal_text`, in the clear."""
        if stored is None or not self._fields_sealed(pid, level):
            return stored
        return self._open_text(pid, kind, row_id, stored)

    def _fields_sealed(self, pid: int, level: Any) -> bool:
        return level is not None and int(level) >= FIELDS_SEALED and self.sealed(pid)

    def _seal_text(self, pid: int, kind: str, row_id: int, text: str) -> str:
        assert self.crypto is not None
        return base64.b64encode(self.crypto.seal(pid, kind, row_id, text.encode("utf-8")) or b"").decode("ascii")

    def _open_text(self, pid: int, kind: str, row_id: int, stored: str) -> str:
        assert self.crypto is not None
        try:
            data = base64.b64decode(stored, validate=True)
        except (binascii.Error, ValueError):
            data = b""  # not even base64: fails the authentication check like any other damage
        return (self.crypto.open(int(pid), kind, int(row_id), data) or b"").decode("utf-8")

    def named(self, rows: Sequence[Row], pid: int = 0, name: int = 1) -> list[Row]:
        """``rows`` with the stored name in column ``name`` of the person in column ``pid`` decrypted."""
        if self.crypto is None:
            return list(rows)
        self.open_keys({r[pid] for r in rows if r[pid] is not None})
        out = []
        for r in rows:
            r = tuple(r)
            out.append(r[:name] + (self._name_of(r[pid], r[name]),) + r[name + 1:])
        return out

    def _name_of(self, pid: int | None, stored: str | None) -> str | None:
        if stored is None or pid is None or not self.sealed(pid):
            return stored
        name = self._names.get((int(pid), stored))  # a sealed name is never written twice: a cache key
        if name is None:
            name = self._names[(int(pid), stored)] = self._open_text(int(pid), seal.NAME, int(pid), stored)
        return name

    def stored_name(self, pid: int, name: str) -> tuple[str, str | None]:
        """``(what the name column keeps, the name's keyed hash)`` for person ``pid`` (key opened)."""
        if not self.sealed(pid):
            return name, None
        assert self.crypto is not None
        return self._seal_text(pid, seal.NAME, pid, name), self.crypto.name_key(name)


class Encryptor:
    """Opens or makes a gallery's key, encrypts a gallery written before encryption, rekeys.

    Args:
        db: the database.
        keys: the people's data keys (given the gallery key once it is opened).
    """

    def __init__(self, db: Dialect, keys: DataKeys) -> None:
        self.db = db
        self.keys = keys

    def unlock(self, keys: KeyStore | None = None, progress: Callable[[int, int], None] | None = None) -> int:
        """Open the gallery's key; a gallery not yet encrypted is given a key and encrypted.

        A new gallery gets a new random key (kept by ``keys``, never in the gallery). An
        existing one written before encryption is encrypted person by person, each in its
        own transaction (all or nothing per person; an interrupted run resumes where it
        stopped). A read-only one that is not encrypted is read as it is.

        Args:
            keys: where this device keeps gallery keys (default: the keyring or the user's config folder).
            progress: called with ``(people done, people to encrypt)``.

        Returns:
            How many people were encrypted now.

        Raises:
            KeyMissingError: the gallery is encrypted and this device has no key for it.
            WrongKeyError: the key this device holds (or the passphrase) is not the gallery's.
        """
        from faceapp.gallery.keys import KeyStore

        keys = keys if keys is not None else KeyStore()
        gid = state_from_row(self.db.rows(self.db.state_sql)[0]).gallery_id
        stored = self.db.rows(self.db.key_check_sql)[0][0]
        if stored is None:
            if self.db.read_only:
                return 0
            kf = keys.read(gid)
            key = keys.load(gid, self.db.location) if kf is not None else keys.create(gid)
            crypto = GalleryCrypto(key, gid, self.db.location)
            # Claimed in one statement, outside a write transaction (a new gallery stays at
            # generation 0); of two devices claiming at once, the other one's key is kept.
            self.db.rows(self.db.claim_key_check_sql, (crypto.check_value,))
            stored = self.db.rows(self.db.key_check_sql)[0][0]
        else:
            crypto = GalleryCrypto(keys.load(gid, self.db.location), gid, self.db.location)
        crypto.verify(str(stored))
        self.keys.use(crypto)
        return self.encrypt_existing(progress)

    def status(self) -> dict[str, Any]:
        """Whether the gallery is encrypted, and how many people are not yet."""
        [(plain,)] = self.db.rows(f"SELECT COUNT(*) FROM persons WHERE {_UNSEALED}")
        from faceapp.gallery.keys import KeyStore

        crypto = self.keys.crypto
        kept = KeyStore().where(crypto.gallery_id) if crypto is not None else None
        return {"encrypted": crypto is not None and not int(plain), "key_kept": kept,
                "people_not_encrypted": int(plain)}

    def encrypt_existing(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Seal every person not yet (all) sealed, each in one transaction; how many were.

        A person written before encryption gets a data key and everything of theirs is sealed;
        one encrypted before template sources and qualities were sealed has those sealed too.
        """
        if self.keys.crypto is None or self.db.read_only:
            return 0
        todo = [int(p) for (p,) in self.db.rows(f"SELECT id FROM persons WHERE {_UNSEALED} ORDER BY id")]
        for done, pid in enumerate(todo, 1):
            try:
                with self.db.transaction() as tx:
                    found = tx.rows(f"SELECT data_key, name FROM persons WHERE id = ? AND {_UNSEALED}", (pid,))
                    if found:
                        self._seal_person(tx, pid, found[0][0], str(found[0][1]))
            finally:
                self.keys.forget(pid)  # opened again from its wrapped key when needed
            if progress is not None:
                progress(done, len(todo))
        if todo:
            self.db.erased()  # no page image of the plaintext stays in the write-ahead log
            log.warning("gallery %s encrypted (%d people): their faces, names and photo file names are now "
                        "unreadable without the gallery's key", self.db.location, len(todo))
        return len(todo)

    def _seal_person(self, tx: Tx, pid: int, wrapped: Any, name: str) -> None:
        """Inside ``tx``: seal what of person ``pid`` is not sealed yet (``wrapped``: their data key, if they have one)."""
        crypto = self.keys.crypto
        assert crypto is not None
        if wrapped is None:
            wrapped = crypto.new_data_key(pid)
            for table, kind, crop_kind in (("templates", seal.TEMPLATE, seal.TEMPLATE_CROP),
                                           ("negatives", seal.NEGATIVE, seal.NEGATIVE_CROP)):
                rows = tx.rows(f"SELECT id, embedding, crop FROM {table} WHERE person_id = ?", (pid,))
                sealed = [(crypto.seal(pid, kind, int(r), as_bytes(e)),
                           crypto.seal(pid, crop_kind, int(r), None if c is None else as_bytes(c)), int(r))
                          for r, e, c in rows]
                tx.many(f"UPDATE {table} SET embedding = ?, crop = ?, checksum = ? WHERE id = ?",
                        [(e, c, integrity.checksum(r, e), r) for e, c, r in sealed if e is not None])
            self.keys.adopt(pid)
            stored, key = self.keys.stored_name(pid, name)
            tx.run("UPDATE persons SET data_key = ?, name = ?, name_key = ? WHERE id = ?", (wrapped, stored, key, pid))
        else:
            self.keys.open_keys([pid], tx)
        rows = tx.rows("SELECT id, source, quality FROM templates WHERE person_id = ?", (pid,))
        tx.many("UPDATE templates SET source = ?, quality = ? WHERE id = ?",
                [(self.keys.seal_text(pid, seal.TEMPLATE_SOURCE, int(r), src, FIELDS_SEALED),
                  self.keys.seal_text(pid, seal.TEMPLATE_QUALITY, int(r), q, FIELDS_SEALED), int(r))
                 for r, src, q in rows])
        tx.run("UPDATE persons SET seal_level = ? WHERE id = ?", (FIELDS_SEALED, pid))

    def rekey(self, keys: KeyStore | None = None) -> str:
        """Give the gallery a new key: every person's data key is wrapped again; returns where it is kept.

        The old key no longer opens the gallery; other devices need the new one (export it).
        The names' keyed hashes and unknown faces' snapshots (keys derived from the gallery key)
        are made again with the new key, in the same transaction.
        """
        from faceapp.gallery.keys import KeyStore

        keys = keys if keys is not None else KeyStore()
        if self.keys.crypto is None:
            self.unlock(keys)
        old = self.keys.crypto
        assert old is not None
        held = keys.read(old.gallery_id)
        key = secrets.token_bytes(seal.KEY_BYTES)
        new = GalleryCrypto(key, old.gallery_id, self.db.location)
        try:
            with self.db.transaction() as tx:
                rows = self.keys.named(tx.rows("SELECT id, name, data_key FROM persons WHERE data_key IS NOT NULL"))
                tx.many("UPDATE persons SET data_key = ?, name_key = ? WHERE id = ?",
                        [(old.rewrap(int(p), as_bytes(w), new), new.name_key(str(n)), int(p)) for p, n, w in rows])
                # unknown faces' snapshots are sealed with the gallery key itself (both dialects keep events)
                shots = tx.rows("SELECT id, snapshot FROM events WHERE person_id IS NULL AND snapshot IS NOT NULL")
                tx.many("UPDATE events SET snapshot = ? WHERE id = ?",
                        [(new.seal(seal.NOBODY, seal.SNAPSHOT, int(e),
                                   old.open(seal.NOBODY, seal.SNAPSHOT, int(e), as_bytes(b))), int(e)) for e, b in shots])
                tx.run(self.db.set_key_check_sql, (new.check_value,))
                where = keys.save(old.gallery_id, key)  # kept before the commit: never a gallery without its key
        except BaseException:
            if held is not None:  # the commit failed: the old key opens the gallery still
                keys.restore(held)
            raise
        self.db.erased()
        self.keys.use(new)
        return where
