"""The one SQL store: every query of a gallery, written once for SQLite and PostgreSQL.

:class:`SQLStore` owns the queries of the :class:`~faceapp.gallery.store.Store` protocol. A
:class:`Dialect` supplies what differs between the two databases: the connection and its
errors, placeholders, case-insensitive comparison, "differs, NULL included", lists of ids,
where the gallery's state (id, generation, model) is kept, and how a write transaction is
locked. :mod:`faceapp.gallery.sqlite_store` and :mod:`faceapp.gallery.pg_store` hold the
two dialects; a PostgreSQL store also keeps a change log (:class:`ChangeRecorder`). Both
keep an event history (:mod:`faceapp.gallery.events`).

Queries are written with ``?`` placeholders; a dialect whose driver wants another style
rewrites them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from faceapp.errors import DuplicatePersonError, GalleryError, GalleryMismatchError, UnknownPersonError
from faceapp.gallery import crypto as seal
from faceapp.gallery import integrity
from faceapp.gallery.crypto import GalleryCrypto, TamperedError
from faceapp.gallery.events import EventHistory, EventRecord
from faceapp.gallery.store import (
    Changes,
    Erased,
    Person,
    ReembedStatus,
    ReembedWork,
    Sample,
    StoreState,
    new_row_id,
    normalise_name,
    unknown_person,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from faceapp.gallery.keys import KeyStore

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

SEAL_BYTES = seal.NONCE + 16  # what sealing adds to a value: its nonce and its tag
# Template id -> (person id, name), for ids appended by :meth:`Dialect.id_chunks`.
OWNERS_SQL = "SELECT t.id, p.id, p.name FROM templates t JOIN persons p ON p.id = t.person_id WHERE "


class Tx(Protocol):
    """One open write transaction.

    Attributes:
        generation: the gallery's generation this transaction writes (already bumped).
    """

    generation: int

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def run(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Dialect(Protocol):
    """What differs between the databases a :class:`SQLStore` speaks to.

    Attributes:
        location: the gallery as it may be shown (a folder, an address without password).
        read_only: writes are refused.
        distinct: the operator for "differs, NULL included".
        find: the function giving a substring's position (0 when absent).
        state_sql: one row ``(gallery_id, generation, model_id, dim)``.
        set_model_sql: sets the searched model id (one parameter).
        set_dim_sql: sets the embedding size (one parameter).
        key_check_sql: one row with the check value of the gallery key (``NULL``: not encrypted).
        set_key_check_sql: sets it (one parameter).
        claim_key_check_sql: sets it when not set yet, outside a transaction (one parameter; returns rows).
    """

    location: str
    read_only: bool
    distinct: str
    find: str
    state_sql: str
    set_model_sql: str
    set_dim_sql: str
    key_check_sql: str
    set_key_check_sql: str
    claim_key_check_sql: str

    def fold(self, expr: str) -> str:
        """``expr`` in the form that compares and sorts names case-insensitively."""
        ...

    def id_chunks(self, column: str, ids: Sequence[int]) -> Iterator[tuple[str, list[Any]]]:
        """``(condition, parameters)`` selecting ``column`` in ``ids``, in as many parts as the driver needs."""
        ...

    def rows(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]:
        """Run one read; ``binary`` asks for binary transfer where the driver has it."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction, serialised with every other writer, that bumps the generation."""
        ...

    def batch(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction that is not a gallery write (the event history: no generation)."""
        ...

    def erased(self) -> bool:
        """After a removal: clear what still holds erased bytes; whether it was cleared."""
        ...

    def describe(self) -> dict[str, Any]: ...
    def check(self) -> str: ...
    def close(self) -> None: ...


class ChangeRecorder(Protocol):
    """Writes a change log: templates added, removed, or moved to another name or person."""

    def templates(self, tx: Tx, kind: str, rows: Sequence[tuple[int, str | None]]) -> None: ...
    def owner(self, tx: Tx, person_id: int) -> None: ...


def state_from_row(row: Row) -> StoreState:
    """A :class:`StoreState` from a ``(gallery_id, generation, model_id, dim[, history])`` row."""
    g, gen, m, d = row[:4]
    h = row[4] if len(row) > 4 else None
    return StoreState(gallery_id=str(g), generation=int(gen), model_id=m, dim=int(d) if d is not None else None,
                      history=int(h) if h is not None else None)


def _blob(value: Any) -> bytes:
    return bytes(value)


class SQLStore:
    """A :class:`~faceapp.gallery.store.Store` over a :class:`Dialect`.

    Args:
        dialect: the database.
        changes: where writes log what they changed (``None``: no change log is kept).
    """

    keeps_events = False  # the database has an ``events`` table (with snapshots)

    def __init__(self, dialect: Dialect, changes: ChangeRecorder | None = None) -> None:
        self.dialect = dialect
        self.location = dialect.location
        self.read_only = dialect.read_only
        self._changes = changes
        self.history = EventHistory(dialect, lambda name: self.get_person(name).id, sealer=self)
        self.crypto: GalleryCrypto | None = None
        self._wrapped: dict[int, bytes] = {}  # person id -> wrapped data key, as last read
        self._sealed: set[int] = set()  # people whose data key is open in ``crypto``
        self._names: dict[tuple[int, str], str] = {}  # (person, sealed name) -> name, as opened

    # ------------------------------------------------------------------ encryption

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
        gid = self.state().gallery_id
        stored = self._query(self.dialect.key_check_sql)[0][0]
        if stored is None:
            if self.read_only:
                return 0
            kf = keys.read(gid)
            key = keys.load(gid, self.location) if kf is not None else keys.create(gid)
            crypto = GalleryCrypto(key, gid, self.location)
            # Claimed in one statement, outside a write transaction (a new gallery stays at
            # generation 0); of two devices claiming at once, the other one's key is kept.
            self._query(self.dialect.claim_key_check_sql, (crypto.check_value,))
            stored = self._query(self.dialect.key_check_sql)[0][0]
        else:
            crypto = GalleryCrypto(keys.load(gid, self.location), gid, self.location)
        crypto.verify(str(stored))
        self.crypto = crypto
        self._sealed.add(seal.NOBODY)
        return self.encrypt_existing(progress)

    def index_key(self) -> bytes | None:
        """The key that encrypts this gallery's saved indexes (``None``: the gallery is not encrypted)."""
        return None if self.crypto is None else self.crypto.index_key

    def encryption(self) -> dict[str, Any]:
        """Whether the gallery is encrypted, and how many people are not yet."""
        [(plain,)] = self._query("SELECT COUNT(*) FROM persons WHERE data_key IS NULL")
        from faceapp.gallery.keys import KeyStore

        kept = KeyStore().where(self.crypto.gallery_id) if self.crypto is not None else None
        return {"encrypted": self.crypto is not None and not int(plain), "key_kept": kept,
                "people_not_encrypted": int(plain)}

    def encrypt_existing(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Encrypt every person not yet encrypted, each in one transaction; how many were."""
        if self.crypto is None or self.read_only:
            return 0
        crypto = self.crypto
        todo = [int(p) for (p,) in self._query("SELECT id FROM persons WHERE data_key IS NULL ORDER BY id")]
        for done, pid in enumerate(todo, 1):
            try:
                with self._transaction() as tx:
                    if tx.rows("SELECT 1 FROM persons WHERE id = ? AND data_key IS NULL", (pid,)):
                        wrapped = crypto.new_data_key(pid)
                        for table, kind, crop_kind in (("templates", seal.TEMPLATE, seal.TEMPLATE_CROP),
                                                       ("negatives", seal.NEGATIVE, seal.NEGATIVE_CROP)):
                            rows = tx.rows(f"SELECT id, embedding, crop FROM {table} WHERE person_id = ?", (pid,))
                            sealed = [(crypto.seal(pid, kind, int(r), _blob(e)),
                                       crypto.seal(pid, crop_kind, int(r), None if c is None else _blob(c)), int(r))
                                      for r, e, c in rows]
                            tx.many(f"UPDATE {table} SET embedding = ?, crop = ?, checksum = ? WHERE id = ?",
                                    [(e, c, integrity.checksum(r, e), r) for e, c, r in sealed if e is not None])
                        [(name,)] = tx.rows("SELECT name FROM persons WHERE id = ?", (pid,))
                        self._sealed.add(pid)
                        stored, key = self._stored_name(pid, str(name))
                        tx.run("UPDATE persons SET data_key = ?, name = ?, name_key = ? WHERE id = ?",
                               (wrapped, stored, key, pid))
            except BaseException:
                self._sealed.discard(pid)
                crypto.forget(pid)
                raise
            self._wrapped.pop(pid, None)
            self._sealed.discard(pid)
            crypto.forget(pid)
            if progress is not None:
                progress(done, len(todo))
        if todo:
            self.dialect.erased()  # no page image of the plaintext stays in the write-ahead log
            log.warning("gallery %s encrypted (%d people): their faces and names are now unreadable without "
                        "the gallery's key", self.location, len(todo))
        return len(todo)

    def rekey(self, keys: KeyStore | None = None) -> str:
        """Give the gallery a new key: every person's data key is wrapped again; returns where it is kept.

        The old key no longer opens the gallery; other devices need the new one (export it).
        The names' keyed hashes and unknown faces' snapshots (keys derived from the gallery key)
        are made again with the new key, in the same transaction.
        """
        from faceapp.gallery.keys import KeyStore

        keys = keys if keys is not None else KeyStore()
        if self.crypto is None:
            self.unlock(keys)
        old = self.crypto
        assert old is not None
        held = keys.read(old.gallery_id)
        key = secrets.token_bytes(seal.KEY_BYTES)
        new = GalleryCrypto(key, old.gallery_id, self.location)
        try:
            with self._transaction() as tx:
                rows = self.named(tx.rows("SELECT id, name, data_key FROM persons WHERE data_key IS NOT NULL"))
                tx.many("UPDATE persons SET data_key = ?, name_key = ? WHERE id = ?",
                        [(old.rewrap(int(p), _blob(w), new), new.name_key(str(n)), int(p)) for p, n, w in rows])
                if self.keeps_events:
                    shots = tx.rows("SELECT id, snapshot FROM events WHERE person_id IS NULL AND snapshot IS NOT NULL")
                    tx.many("UPDATE events SET snapshot = ? WHERE id = ?",
                            [(new.seal(seal.NOBODY, seal.SNAPSHOT, int(e),
                                       old.open(seal.NOBODY, seal.SNAPSHOT, int(e), _blob(b))), int(e)) for e, b in shots])
                tx.run(self.dialect.set_key_check_sql, (new.check_value,))
                where = keys.save(old.gallery_id, key)  # kept before the commit: never a gallery without its key
        except BaseException:
            if held is not None:  # the commit failed: the old key opens the gallery still
                keys.restore(held)
            raise
        self.dialect.erased()
        self.crypto, self._wrapped, self._sealed, self._names = new, {}, {seal.NOBODY}, {}
        return where

    def _open_keys(self, pids: Any, tx: Tx | None = None) -> None:
        """Open the data keys of the encrypted people among ``pids`` (read from ``tx`` when given)."""
        if self.crypto is None:
            return
        want = {int(p) for p in pids} - self._sealed
        if not want:
            return
        if tx is not None or not want <= self._wrapped.keys():
            rows = (tx.rows if tx is not None else self._query)(
                "SELECT id, data_key FROM persons WHERE data_key IS NOT NULL")
            self._wrapped.update({int(p): _blob(w) for p, w in rows})
        for pid in want & self._wrapped.keys():
            self.crypto.person(pid, self._wrapped[pid])
            self._sealed.add(pid)

    # ------------------------------------------------------------------ event snapshots (events.Sealer)

    def seal_snapshot(self, tx: Tx, person_id: int | None, event_id: int, data: bytes) -> bytes:
        """An event snapshot sealed with its person's data key (an unknown face's with the gallery's)."""
        pid = seal.NOBODY if person_id is None else int(person_id)
        self._open_keys([pid], tx)
        return self._seal(pid, seal.SNAPSHOT, event_id, data) or b""

    def open_snapshot(self, person_id: int | None, event_id: int, blob: bytes) -> bytes | None:
        """An event snapshot in the clear."""
        return self._open(seal.NOBODY if person_id is None else int(person_id), seal.SNAPSHOT, event_id, blob)

    def _seal(self, pid: int, kind: str, row_id: int, data: bytes | None) -> bytes | None:
        if self.crypto is None or int(pid) not in self._sealed:
            return data
        return self.crypto.seal(pid, kind, row_id, data)

    def _open(self, pid: int, kind: str, row_id: int, blob: Any) -> bytes | None:
        """A stored value in the clear (raises :class:`TamperedError` when it fails authentication)."""
        if blob is None:
            return None
        if self.crypto is None or int(pid) not in self._sealed:
            return _blob(blob)
        return self.crypto.open(pid, kind, row_id, _blob(blob))

    def _vector(self, pid: int, kind: str, row_id: int, blob: Any, crc: int | None,
                dim: int | None) -> tuple[bytes | None, bool]:
        """``(vector bytes or None when damaged, whether it failed authentication)``."""
        try:
            data = self._open(pid, kind, row_id, blob)
        except TamperedError:
            return None, True
        assert data is not None
        sealed = self.crypto is not None and int(pid) in self._sealed
        return (data if integrity.intact(int(row_id), data, None if sealed else crc, dim) else None), False

    # ------------------------------------------------------------------ plumbing

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.dialect.rows(sql, params)

    def _transaction(self) -> contextlib.AbstractContextManager[Tx]:
        return self.dialect.transaction()

    def _log(self, tx: Tx, kind: str, rows: Sequence[tuple[int, str | None]]) -> None:
        if self._changes is not None and rows:
            self._changes.templates(tx, kind, rows)

    def _log_owner(self, tx: Tx, pid: int) -> None:
        if self._changes is not None:
            self._changes.owner(tx, pid)

    def _forget(self, template_ids: Sequence[int]) -> None:
        """Called with the ids of erased templates (a subclass may cache owners)."""

    # ------------------------------------------------------------------ state

    def state(self) -> StoreState:
        return state_from_row(self._query(self.dialect.state_sql)[0])

    def model_counts(self) -> dict[str, int]:
        rows = self._query("SELECT COALESCE(model_id, '?'), COUNT(*) FROM templates GROUP BY model_id")
        return {m: int(c) for m, c in rows}

    # ------------------------------------------------------------------ people

    def list_persons(self, search: str | None = None) -> list[Person]:
        """Everyone (whose name contains ``search``, case-insensitively), by name; names are
        decrypted in memory, so the search and the sorting are done here, not by the database."""
        rows = self.named(self._query(
            "SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p LEFT JOIN templates t "
            "ON t.person_id = p.id GROUP BY p.id"))
        people = [Person(int(i), n, int(c), float(t)) for i, n, c, t in rows]
        if search:
            people = [p for p in people if search.lower() in p.name.lower()]
        return sorted(people, key=lambda p: (p.name.casefold(), p.name))

    def _name_is(self, prefix: str, name: str) -> tuple[str, tuple[Any, ...]]:
        """The condition (and its parameters) that finds the person named ``name``: by the keyed
        hash of the name, or, for a person not yet encrypted, by the name itself."""
        d = self.dialect
        key = self.crypto.name_key(name) if self.crypto is not None else None
        return (f"({prefix}name_key = ? OR ({prefix}data_key IS NULL AND {d.fold(prefix + 'name')} = {d.fold('?')}))",
                (key, name))

    def get_person(self, name: str) -> Person:
        where, params = self._name_is("p.", normalise_name(name))
        rows = self.named(self._query(
            "SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p LEFT JOIN templates t "
            f"ON t.person_id = p.id WHERE {where} GROUP BY p.id", params))
        if not rows:
            raise unknown_person(name)
        i, n, c, t = rows[0]
        return Person(int(i), n, int(c), float(t))

    def named(self, rows: Sequence[Row], pid: int = 0, name: int = 1) -> list[Row]:
        """``rows`` with the stored name in column ``name`` of the person in column ``pid`` decrypted."""
        if self.crypto is None:
            return list(rows)
        self._open_keys({r[pid] for r in rows if r[pid] is not None})
        out = []
        for r in rows:
            r = tuple(r)
            out.append(r[:name] + (self._name_of(r[pid], r[name]),) + r[name + 1:])
        return out

    def _name_of(self, pid: int | None, stored: str | None) -> str | None:
        if stored is None or pid is None or self.crypto is None or int(pid) not in self._sealed:
            return stored
        name = self._names.get((int(pid), stored))  # a sealed name is never written twice: a cache key
        if name is None:
            name = (self.crypto.open(int(pid), seal.NAME, int(pid), base64.b64decode(stored)) or b"").decode("utf-8")
            self._names[(int(pid), stored)] = name
        return name

    def _stored_name(self, pid: int, name: str) -> tuple[str, str | None]:
        """``(what the name column keeps, the name's keyed hash)`` for person ``pid`` (key opened)."""
        if self.crypto is None or int(pid) not in self._sealed:
            return name, None
        sealed = self.crypto.seal(pid, seal.NAME, pid, name.encode("utf-8")) or b""
        return base64.b64encode(sealed).decode("ascii"), self.crypto.name_key(name)

    def find_person(self, tx: Tx, name: str) -> int | None:
        """Inside a transaction: the id of the person named ``name`` (``None``: nobody)."""
        return self._find_person(tx, name)

    def count_persons(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM persons")[0][0])

    def count_templates(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM templates")[0][0])

    def _find_person(self, tx: Tx, name: str) -> int | None:
        where, params = self._name_is("", normalise_name(name))
        rows = tx.rows(f"SELECT id FROM persons WHERE {where}", params)
        return int(rows[0][0]) if rows else None

    def _person_id(self, tx: Tx, name: str) -> int:
        pid = self._find_person(tx, name)
        if pid is None:
            raise unknown_person(name)
        return pid

    def _check_model(self, tx: Tx, model_id: str, dim: int) -> None:
        """Inside a write transaction: refuse templates of another embedder or size."""
        [(empty, *row)] = tx.rows(f"SELECT NOT EXISTS (SELECT 1 FROM templates), s.* FROM ({self.dialect.state_sql}) s")
        if empty:
            return
        state = state_from_row(tuple(row))
        if state.model_id is not None and state.model_id != model_id:
            raise GalleryMismatchError(
                f"gallery {self.location} holds templates made by another embedder (sha256 {state.model_id[:12]}...); "
                "run `faceapp-cli reembed` to rebuild them with this model, or use the model they were made with"
            )
        if state.dim is not None and state.dim != dim:
            raise GalleryMismatchError(f"gallery {self.location} holds {state.dim}-d templates, the model gives {dim}-d")

    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      crops: Sequence[bytes | None], sources: Sequence[str | None],
                      qualities: Sequence[dict[str, float] | None], create: bool, must_be_new: bool) -> Person:
        clean = normalise_name(name)
        emb = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        now = time.time()
        with self._transaction() as tx:
            self._check_model(tx, model_id, emb.shape[1])
            pid = self._find_person(tx, clean)
            if pid is not None and must_be_new:
                raise DuplicatePersonError(
                    f"a person named {clean!r} already exists; use --add to add these photos to them or choose another name"
                )
            if pid is None:
                if not create:
                    raise unknown_person(clean)
                pid = new_row_id()
                wrapped = self.crypto.new_data_key(pid) if self.crypto is not None else None
                if wrapped is not None:
                    self._wrapped[pid] = wrapped
                    self._sealed.add(pid)
                stored, key = self._stored_name(pid, clean)
                tx.run("INSERT INTO persons (id, name, created_at, data_key, name_key) VALUES (?, ?, ?, ?, ?)",
                       (pid, stored, now, wrapped, key))
            else:
                self._open_keys([pid], tx)
            ids = [new_row_id() for _ in range(len(emb))]
            blobs = [self._seal(pid, seal.TEMPLATE, ids[i], emb[i].tobytes()) or b"" for i in range(len(emb))]
            tx.many(
                "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id, checksum) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(ids[i], pid, blobs[i], now, sources[i],
                  json.dumps(qualities[i]) if qualities[i] else None,
                  self._seal(pid, seal.TEMPLATE_CROP, ids[i], crops[i]), model_id,
                  integrity.checksum(ids[i], blobs[i])) for i in range(len(emb))],
            )
            self._log(tx, "add", [(t, model_id) for t in ids])
            tx.run(self.dialect.set_model_sql, (model_id,))
            tx.run(self.dialect.set_dim_sql, (int(emb.shape[1]),))
        return self.get_person(clean)

    def rename(self, old: str, new: str) -> Person:
        target = normalise_name(new)
        with self._transaction() as tx:
            pid = self._person_id(tx, old)
            other = self._find_person(tx, target)
            if other is not None and other != pid:
                raise DuplicatePersonError(f"a person named {target!r} already exists; choose another name")
            self._open_keys([pid], tx)
            tx.run("UPDATE persons SET name = ?, name_key = ? WHERE id = ?", (*self._stored_name(pid, target), pid))
            self._log_owner(tx, pid)
        return self.get_person(target)

    def merge(self, source: str, target: str) -> Person:
        with self._transaction() as tx:
            src = self._person_id(tx, source)
            dst = self._person_id(tx, target)
            if src == dst:
                raise GalleryError("cannot merge a person with themselves")
            self._log_owner(tx, src)
            self._open_keys([src, dst], tx)
            for table, kind, crop_kind in (("templates", seal.TEMPLATE, seal.TEMPLATE_CROP),
                                           ("negatives", seal.NEGATIVE, seal.NEGATIVE_CROP)):
                rows = tx.rows(f"SELECT id, embedding, crop FROM {table} WHERE person_id = ?", (src,))
                moved = []
                for rid, blob, crop in rows:  # opened with the source's key, sealed with the target's
                    e = self._seal(dst, kind, int(rid), self._open(src, kind, int(rid), blob)) or b""
                    c = self._seal(dst, crop_kind, int(rid), self._open(src, crop_kind, int(rid), crop))
                    moved.append((dst, e, c, integrity.checksum(int(rid), e), int(rid)))
                tx.many(f"UPDATE {table} SET person_id = ?, embedding = ?, crop = ?, checksum = ? WHERE id = ?", moved)
            tx.run("DELETE FROM persons WHERE id = ?", (src,))  # and with it the source's data key
        self._shredded(src)
        self.dialect.erased()  # the old name row is gone too
        return self.get_person(target)

    def _erase(self, tx: Tx, where: str, params: Sequence[Any]) -> tuple[int, int]:
        """Delete template rows matching ``where`` and log them; returns (templates, crops)."""
        rows = tx.rows(f"DELETE FROM templates WHERE {where} RETURNING id, model_id, crop IS NOT NULL", params)
        self._log(tx, "remove", [(int(t), m) for t, m, _ in rows])
        self._forget([int(t) for t, _, _ in rows])
        return len(rows), sum(1 for *_, c in rows if c)

    def _erase_negatives(self, tx: Tx, where: str, params: Sequence[Any]) -> tuple[int, int]:
        """Delete negative samples matching ``where``; returns (negatives, crops)."""
        rows = tx.rows(f"DELETE FROM negatives WHERE {where} RETURNING crop IS NOT NULL", params)
        return len(rows), sum(1 for (c,) in rows if c)

    def remove(self, name: str) -> Erased:
        with self._transaction() as tx:
            pid = self._person_id(tx, name)
            n, c = self._erase(tx, "person_id = ?", (pid,))
            neg, negc = self._erase_negatives(tx, "person_id = ?", (pid,))
            tx.run("DELETE FROM persons WHERE id = ?", (pid,))  # their data key and, by cascade, their events
        self._shredded(pid)
        return Erased(templates=n, crops=c + negc, negatives=neg, log_cleared=self.dialect.erased())

    def _shredded(self, pid: int) -> None:
        """Forget a removed person's data key in memory too."""
        self._wrapped.pop(int(pid), None)
        self._sealed.discard(int(pid))
        self._names.clear()
        if self.crypto is not None:
            self.crypto.forget(pid)

    def remove_template(self, template_id: int) -> Erased:
        with self._transaction() as tx:
            n, c = self._erase(tx, "id = ?", (int(template_id),))
            if n == 0:
                raise UnknownPersonError(f"no sample {template_id} in the gallery; it may have been removed already")
        return Erased(templates=n, crops=c, log_cleared=self.dialect.erased())

    def samples(self, name: str) -> list[Sample]:
        pid = self.get_person(name).id
        rows = self._query(
            "SELECT id, crop, quality, source, created_at, model_id FROM templates WHERE person_id = ? "
            "ORDER BY created_at, id", (pid,)
        )
        self._open_keys([pid])
        return [Sample(int(i), self._open(pid, seal.TEMPLATE_CROP, int(i), c), json.loads(q) if q else None, s,
                       float(t), m) for i, c, q, s, t, m in rows]

    def crops(self) -> Iterator[tuple[str, int, bytes]]:
        rows = self.named(self._query(
            "SELECT t.person_id, p.name, t.id, t.crop FROM templates t JOIN persons p ON p.id = t.person_id "
            "WHERE t.crop IS NOT NULL"), 0, 1)
        for pid, name, tid, crop in sorted(rows, key=lambda r: (r[1], r[2])):
            yield name, int(tid), self._open(pid, seal.TEMPLATE_CROP, int(tid), crop) or b""

    # ------------------------------------------------------------------ negatives

    def add_negative(self, name: str, embedding: np.ndarray, *, model_id: str, crop: bytes | None) -> int:
        emb = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).reshape(-1))
        with self._transaction() as tx:
            pid = self._person_id(tx, name)
            stored = state_from_row(tx.rows(self.dialect.state_sql)[0]).model_id
            if stored is not None and stored != model_id:
                raise GalleryMismatchError(
                    f"gallery {self.location} holds templates made by another embedder; run `faceapp-cli reembed` first"
                )
            nid = new_row_id()
            self._open_keys([pid], tx)
            blob = self._seal(pid, seal.NEGATIVE, nid, emb.tobytes()) or b""
            tx.run("INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at, checksum) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (nid, pid, blob, model_id, self._seal(pid, seal.NEGATIVE_CROP, nid, crop), time.time(),
                    integrity.checksum(nid, blob)))
            return nid

    def negatives(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Person ids and vectors of the intact negative samples of ``model_id`` (damaged ones are left out)."""
        rows = self._query("SELECT id, person_id, embedding, checksum FROM negatives WHERE model_id = ? ORDER BY id",
                           (model_id,))
        self._open_keys({r[1] for r in rows})
        kept = [(int(p), v) for r, p, b, c in rows
                if (v := self._vector(p, seal.NEGATIVE, r, b, c, None)[0]) is not None]
        if not kept:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        pids = np.array([p for p, _ in kept], np.int64)
        return pids, np.stack([np.frombuffer(v, np.float32) for _, v in kept])

    def negative_samples(self, model_id: str) -> list[tuple[int, np.ndarray, bytes | None]]:
        rows = self._query("SELECT id, person_id, embedding, crop FROM negatives WHERE model_id = ? ORDER BY id",
                           (model_id,))
        self._open_keys({r[1] for r in rows})
        return [(int(p), np.frombuffer(self._open(p, seal.NEGATIVE, r, e) or b"", np.float32),
                 self._open(p, seal.NEGATIVE_CROP, r, c)) for r, p, e, c in rows]

    # ------------------------------------------------------------------ what an index is built from

    def template_ids(self, model_id: str) -> np.ndarray:
        rows = self._query("SELECT id FROM templates WHERE model_id = ? ORDER BY id", (model_id,))
        return np.array([r[0] for r in rows], dtype=np.int64)

    def template_owners(self, model_id: str) -> list[Row]:
        """``(template id, person id, name)`` of every template of ``model_id``, by template id."""
        return self.named(self._query("SELECT t.id, t.person_id, p.name FROM templates t JOIN persons p "
                                       "ON p.id = t.person_id WHERE t.model_id = ? ORDER BY t.id", (model_id,)), 1, 2)

    def changes_since(self, generation: int, model_id: str, history: int | None = None) -> Changes | None:
        """``None``: this store keeps no change log (a folder's ids are compared quickly)."""
        return None

    def checked_embeddings(self, ids: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored vectors of templates ``ids`` and, per row, whether it is intact (it opens
        with its person's key, or has its checksum; size, finite unit length:
        :func:`faceapp.gallery.integrity.intact`); a damaged row's vector is zeros and must not be searched."""
        out, ok, _ = self._checked(ids, dim)
        return out, ok

    def _checked(self, ids: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, int]:
        """:meth:`checked_embeddings` and how many rows failed their authentication check."""
        out = np.zeros((len(ids), dim), np.float32)
        ok = np.zeros(len(ids), bool)
        tampered = 0
        pos = {int(t): i for i, t in enumerate(ids)}
        for cond, params in self.dialect.id_chunks("id", [int(x) for x in ids]):
            sql = f"SELECT id, person_id, embedding, checksum FROM templates WHERE {cond}"
            rows = self.dialect.rows(sql, params, binary=True)
            self._open_keys({r[1] for r in rows})
            sealed = [(int(p), int(t), _blob(b)) for t, p, b, _ in rows if int(p) in self._sealed]
            opened = self.crypto.open_rows(seal.TEMPLATE, sealed) if self.crypto is not None and sealed else []
            tampered += sum(1 for d in opened if d is None)
            found = [(t, d) for (_, t, _), d in zip(sealed, opened, strict=True) if d is not None]
            found += [(int(t), data) for t, p, b, crc in rows if int(p) not in self._sealed
                      if crc is None or integrity.checksum(int(t), data := _blob(b)) == int(crc)]
            found = [(t, d) for t, d in found if len(d) == 4 * dim]
            if not found:
                continue
            vectors = np.frombuffer(b"".join(d for _, d in found), np.float32).reshape(len(found), dim)
            good = integrity.unit_rows(vectors)  # one check for the whole chunk
            at = np.array([pos[t] for t, _ in found], np.int64)
            out[at[good]] = vectors[good]
            ok[at[good]] = True
        return out, ok, tampered

    def embeddings(self, ids: np.ndarray, dim: int) -> np.ndarray:
        """The stored vectors of templates ``ids``.

        Raises:
            TamperedError: one of them fails its authentication check.
            GalleryError: one of them is damaged (see :meth:`damaged`).
        """
        out, ok, tampered = self._checked(ids, dim)
        if tampered:
            raise TamperedError(f"gallery {self.location} has {tampered} template(s) that fail their authentication "
                                "check (changed, damaged, or copied from another row); run `faceapp-cli check` "
                                "to list them and embed them again from their face crops")
        if not ok.all():
            raise GalleryError(f"gallery {self.location} has {int((~ok).sum())} damaged template(s); "
                               "run `faceapp-cli check` to list them and embed them again from their face crops")
        return out

    def damaged(self) -> list[integrity.Damaged]:
        """Every stored template and negative sample that is not what was written, by person."""
        found = []
        for kind, table in (("template", "templates"), ("negative", "negatives")):
            sql = (f"SELECT t.id, p.name, t.embedding, t.checksum, t.model_id, t.crop IS NOT NULL, p.id FROM {table} t "
                   "JOIN persons p ON p.id = t.person_id")
            state = self.state()
            rows = self.named(self.dialect.rows(sql, (), binary=True), 6, 1)
            for rid, name, blob, crc, model, has_crop, pid in sorted(rows, key=lambda r: (r[1].casefold(), r[0])):
                dim = state.dim if model == state.model_id else None
                if self._vector(pid, kind, rid, blob, crc, dim)[0] is None:
                    found.append(integrity.Damaged(kind, int(rid), name, model, bool(has_crop)))
        return found

    def repair(self, kind: str, row_id: int, vector: np.ndarray) -> None:
        """Put a newly made vector (from the row's own crop) in place of a damaged one."""
        emb = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(-1))
        table = "templates" if kind == "template" else "negatives"
        with self._transaction() as tx:
            model = tx.rows(f"SELECT model_id, person_id FROM {table} WHERE id = ?", (int(row_id),))
            if not model:
                return
            pid = int(model[0][1])
            self._open_keys([pid], tx)
            blob = self._seal(pid, kind, int(row_id), emb.tobytes()) or b""
            tx.run(f"UPDATE {table} SET embedding = ?, checksum = ? WHERE id = ?",
                   (blob, integrity.checksum(row_id, blob), int(row_id)))
            if kind == "template":  # devices that left it out of their index take it in again
                self._log(tx, "add", [(int(row_id), model[0][0])])

    def fill_checksums(self) -> int:
        """Give rows written before checksums were kept their checksum (once, on opening)."""
        filled = 0
        for table in ("templates", "negatives"):
            rows = self.dialect.rows(f"SELECT id, embedding FROM {table} WHERE checksum IS NULL", (), binary=True)
            if not rows:
                continue
            with self._transaction() as tx:
                tx.many(f"UPDATE {table} SET checksum = ? WHERE id = ?",
                        [(integrity.checksum(int(r), _blob(b)), int(r)) for r, b in rows])
            filled += len(rows)
        return filled

    def owners(self, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        out: dict[int, tuple[int, str]] = {}
        for cond, params in self.dialect.id_chunks("t.id", [int(x) for x in ids]):
            out.update({int(t): (int(p), n) for t, p, n in self.named(self._query(OWNERS_SQL + cond, params), 1, 2)})
        return out

    # ------------------------------------------------------------------ re-embedding

    def _pending(self, table: str) -> str:
        """Rows of ``table`` (aliased ``o``) with a crop and no counterpart of the new model yet."""
        return (f"FROM {table} o WHERE o.model_id {self.dialect.distinct} ? AND o.crop IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {table} n WHERE n.derived_from = o.id AND n.model_id = ?)")

    def reembed_status(self, model_id: str) -> ReembedStatus:
        d = self.dialect
        done = self._query("SELECT COUNT(*) FROM templates WHERE model_id = ? AND derived_from IS NOT NULL", (model_id,))
        pending = self._query(f"SELECT COUNT(*) {self._pending('templates')}", (model_id, model_id))
        lost = self.named(self._query(
            "SELECT DISTINCT p.id, p.name FROM templates t JOIN persons p ON p.id = t.person_id "
            f"WHERE t.model_id {d.distinct} ? AND t.crop IS NULL", (model_id,)))
        return ReembedStatus(done=int(done[0][0]), pending=int(pending[0][0]),
                             without_crop=tuple(sorted((r[1] for r in lost), key=str.casefold)))

    def reembed_work(self, model_id: str, limit: int) -> list[ReembedWork]:
        rows = self._query(
            f"SELECT 'template', o.id, o.crop, o.person_id {self._pending('templates')} "
            f"UNION ALL SELECT 'negative', o.id, o.crop, o.person_id {self._pending('negatives')} ORDER BY 2 LIMIT ?",
            (model_id, model_id, model_id, model_id, int(limit)),
        )
        self._open_keys({r[3] for r in rows})
        return [ReembedWork(k, int(i), self._open(p, f"{k}-crop", int(i), c) or b"") for k, i, c, p in rows]

    def add_reembedded(self, model_id: str, rows: Sequence[tuple[ReembedWork, np.ndarray]]) -> None:
        """Store new-model rows beside the old ones; searches keep using the old model until finished."""
        with self._transaction() as tx:
            added: list[tuple[int, str | None]] = []
            for work, emb in rows:
                table = "templates" if work.kind == "template" else "negatives"
                owner = tx.rows(f"SELECT person_id FROM {table} WHERE id = ?", (work.row_id,))
                if not owner:
                    continue
                pid = int(owner[0][0])
                self._open_keys([pid], tx)
                new = new_row_id()
                blob = self._seal(pid, work.kind, new, np.ascontiguousarray(emb, dtype=np.float32).tobytes()) or b""
                crop = self._seal(pid, f"{work.kind}-crop", new, work.crop)  # sealed for its new row
                crc = integrity.checksum(new, blob)
                if work.kind == "template":
                    tx.run(
                        "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id, "
                        "derived_from, checksum) SELECT ?, person_id, ?, created_at, source, quality, ?, ?, id, ? "
                        "FROM templates WHERE id = ?", (new, blob, crop, model_id, crc, work.row_id))
                    added.append((new, model_id))
                else:
                    tx.run(
                        "INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at, derived_from, "
                        "checksum) SELECT ?, person_id, ?, ?, ?, created_at, id, ? FROM negatives WHERE id = ?",
                        (new, blob, model_id, crop, crc, work.row_id))
            self._log(tx, "add", added)

    def finish_reembed(self, model_id: str) -> Erased:
        """Switch the gallery to ``model_id`` and erase every row of other models.

        People whose templates could not be rebuilt (no crop) stay listed, with no
        templates, until they are enrolled again.
        """
        other = f"model_id {self.dialect.distinct} ?"
        with self._transaction() as tx:
            dim = tx.rows(f"SELECT (length(t.embedding) - CASE WHEN p.data_key IS NULL THEN 0 ELSE {SEAL_BYTES} END) / 4 "
                          "FROM templates t JOIN persons p ON p.id = t.person_id WHERE t.model_id = ? LIMIT 1",
                          (model_id,))
            n, c = self._erase(tx, other, (model_id,))
            neg, _ = self._erase_negatives(tx, other, (model_id,))
            tx.run("UPDATE templates SET derived_from = NULL WHERE derived_from IS NOT NULL")
            tx.run("UPDATE negatives SET derived_from = NULL WHERE derived_from IS NOT NULL")
            tx.run(self.dialect.set_model_sql, (model_id,))
            if dim:
                tx.run(self.dialect.set_dim_sql, (int(dim[0][0]),))
        return Erased(templates=n, crops=c, negatives=neg, log_cleared=self.dialect.erased())

    # ------------------------------------------------------------------ event history

    def add_events(self, events: Sequence[EventRecord], retention_days: float) -> None:
        """Keep events and drop those older than ``retention_days`` (see :meth:`EventHistory.add`)."""
        self.history.add(events, retention_days)

    def events(self, since: float | None = None, person: str | None = None, *,
               snapshots: bool = False) -> list[EventRecord]:
        """Kept events, oldest first (see :meth:`EventHistory.read`)."""
        return self.history.read(since, person, snapshots=snapshots)

    def last_seen(self) -> dict[str, float]:
        """``{name: Unix time of the person's latest kept match event}`` (see :meth:`EventHistory.last_seen`)."""
        return self.history.last_seen()

    # ------------------------------------------------------------------ housekeeping

    def describe(self) -> dict[str, Any]:
        return self.dialect.describe()

    def check(self) -> str:
        return self.dialect.check()

    def close(self) -> None:
        self.dialect.close()
