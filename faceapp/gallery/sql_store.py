"""The one SQL store: every query of a gallery, written once for SQLite and PostgreSQL.

:class:`SQLStore` owns the queries of the :class:`~faceapp.gallery.store.Store` protocol over a
:class:`~faceapp.gallery.sql_dialect.Dialect`, which supplies what differs between the two
databases. :mod:`faceapp.gallery.sqlite_store` and :mod:`faceapp.gallery.pg_dialect` hold the
two dialects; a PostgreSQL store also keeps a change log
(:class:`~faceapp.gallery.sql_dialect.ChangeRecorder`). Both keep an event history
(:mod:`faceapp.gallery.events`). Values are sealed with their person's data key
(:class:`~faceapp.gallery.encryption.DataKeys`); the gallery key's life is
:class:`~faceapp.gallery.encryption.Encryptor`'s, and rebuilding stored vectors
:class:`~faceapp.gallery.sql_rebuild.Rebuilder`'s.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from faceapp.errors import DuplicatePersonError, Fix, GalleryError, GalleryMismatchError, UnknownPersonError
from faceapp.gallery import crypto as seal
from faceapp.gallery import integrity
from faceapp.gallery.crypto import GalleryCrypto, TamperedError
from faceapp.gallery.encryption import DataKeys, Encryptor
from faceapp.gallery.events import EventHistory, EventRecord
from faceapp.gallery.sql_dialect import (
    OWNERS_SQL,
    ChangeRecorder,
    Dialect,
    Row,
    Tx,
    as_bytes,
    state_from_row,
)
from faceapp.gallery.sql_rebuild import Rebuilder
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

__all__ = ["SQLStore", "Dialect", "Tx", "Row", "ChangeRecorder", "OWNERS_SQL", "state_from_row"]


class SQLStore:
    """A :class:`~faceapp.gallery.store.Store` over a :class:`Dialect`.

    Args:
        dialect: the database.
        changes: where writes log what they changed (``None``: no change log is kept).
    """

    def __init__(self, dialect: Dialect, changes: ChangeRecorder | None = None) -> None:
        self.dialect = dialect
        self._copying = False  # opened by a copy into it: the one writer while it is marked
        self.location = dialect.location
        self.read_only = dialect.read_only
        self._changes = changes
        self.history = EventHistory(dialect, lambda name: self.get_person(name).id, sealer=self)
        self.data_keys = DataKeys(dialect)
        self.encryptor = Encryptor(dialect, self.data_keys)
        self.rebuilder = Rebuilder(self)

    def finish_opening(self, keys: KeyStore | None, progress: Callable[[int, int], None] | None, *,
                       copying: bool = False) -> None:
        """Refuse the rest of an interrupted copy (unless ``copying`` into it), then :meth:`unlock`;
        the store is closed when either raises."""
        self._copying = copying
        try:
            mark = None if copying else self.copy_mark()
            if mark is not None:
                raise GalleryError(f"gallery {self.location} is an interrupted copy of {mark}", Fix.FINISH_COPY,
                                   source=mark, target=self.location)
            self.unlock(keys, progress)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ copies into this gallery

    def copy_mark(self) -> str | None:
        """The source of a copy into this gallery that has not finished (``None``: none)."""
        mark = self._mark(self._query(self.dialect.copy_mark_sql))
        return None if mark is None else mark[1]

    @staticmethod
    def _mark(rows: Sequence[Row]) -> tuple[str, str] | None:
        """``(token, source)`` of the mark in ``rows`` (the copy mark query's result)."""
        if not rows or rows[0][0] is None:
            return None
        token, _, source = str(rows[0][0]).partition(" ")
        return token, source

    def _refuse_while_copied(self, tx: Tx) -> None:
        """Writers other than the copy itself never write into a gallery a copy is filling
        (the copy erases everything if it fails, so what they wrote would go with it)."""
        if not self._copying and self._mark(tx.rows(self.dialect.copy_mark_sql)) is not None:
            raise GalleryError(f"gallery {self.location} is being filled by a copy (or one was interrupted); "
                               "nothing was changed: write to it once the copy has finished")

    def mark_copy(self, source: str) -> str:
        """Mark this empty gallery as the destination of a copy of ``source`` (its own transaction).

        Returns:
            The copy's token: only the copy holding it can finish or discard the copy.

        Raises:
            GalleryError: the gallery holds someone, or another copy's mark (both checked in
                the transaction that writes the mark, so no writer comes in between).
        """
        token = secrets.token_hex(8)
        with self._transaction() as tx:
            if self._mark(tx.rows(self.dialect.copy_mark_sql)) is not None:
                raise GalleryError(f"gallery {self.location} is already the destination of another copy; "
                                   "nothing was changed")
            if tx.rows("SELECT id FROM persons LIMIT 1"):
                raise GalleryError(f"gallery {self.location} is not empty; copy into a new folder or an empty database")
            tx.run(self.dialect.mark_copy_sql, (f"{token} {source}",))
        self._copying = True  # this store is the copy's writer
        return token

    def _held(self, tx: Tx, token: str | None) -> None:
        mark = self._mark(tx.rows(self.dialect.copy_mark_sql))
        if mark is None or (token is not None and mark[0] != token):
            raise GalleryError(f"gallery {self.location}: another copy has taken it over; nothing of it was "
                               "changed by this one")

    def finish_copy(self, token: str) -> None:
        """Clear the mark of :meth:`mark_copy`: the copy holding ``token`` is whole and checked."""
        with self._transaction() as tx:
            self._held(tx, token)
            tx.run(self.dialect.clear_copy_sql)
        self._copying = False

    def discard_copy(self, token: str | None = None) -> Erased:
        """Erase what an unfinished copy wrote (everything: the gallery was empty and no one else
        writes while it is marked) and clear its mark, in one transaction.

        Args:
            token: the copy's own token (:meth:`mark_copy`); ``None``: whichever interrupted copy
                left its mark.
        """
        with self._transaction() as tx:
            self._held(tx, token)
            n, c = self.erase_templates(tx, "1 = 1", ())
            neg, negc = self.erase_negatives(tx, "1 = 1", ())
            tx.run("DELETE FROM events")
            tx.run("DELETE FROM persons")
            tx.run(self.dialect.clear_copy_sql)
        if self.crypto is not None:
            self.data_keys.use(self.crypto)  # the people's opened data keys are gone with them
        return Erased(templates=n, crops=c + negc, negatives=neg, log_cleared=self.dialect.erased())

    # ------------------------------------------------------------------ encryption (see Encryptor)

    @property
    def crypto(self) -> GalleryCrypto | None:
        """The gallery's key in use (``None``: not encrypted, or not opened)."""
        return self.data_keys.crypto

    @crypto.setter
    def crypto(self, value: GalleryCrypto | None) -> None:
        self.data_keys.crypto = value

    def unlock(self, keys: KeyStore | None = None, progress: Callable[[int, int], None] | None = None) -> int:
        """Open the gallery's key, or give a gallery not yet encrypted one (see :meth:`Encryptor.unlock`)."""
        return self.encryptor.unlock(keys, progress)

    def index_key(self) -> bytes | None:
        """The key that encrypts this gallery's saved indexes (``None``: the gallery is not encrypted)."""
        return None if self.crypto is None else self.crypto.index_key

    def encryption(self) -> dict[str, Any]:
        """Whether the gallery is encrypted, and how many people are not yet."""
        return self.encryptor.status()

    def rekey(self, keys: KeyStore | None = None) -> str:
        """Give the gallery a new key (see :meth:`Encryptor.rekey`); returns where it is kept."""
        return self.encryptor.rekey(keys)

    # ------------------------------------------------------------------ event snapshots (events.Sealer)

    def seal_snapshot(self, tx: Tx, person_id: int | None, event_id: int, data: bytes) -> bytes:
        """An event snapshot sealed with its person's data key (an unknown face's with the gallery's)."""
        pid = seal.NOBODY if person_id is None else int(person_id)
        self.data_keys.open_keys([pid], tx)
        return self.data_keys.seal(pid, seal.SNAPSHOT, event_id, data) or b""

    def open_snapshot(self, person_id: int | None, event_id: int, blob: bytes) -> bytes | None:
        """An event snapshot in the clear."""
        return self.data_keys.open(seal.NOBODY if person_id is None else int(person_id), seal.SNAPSHOT, event_id, blob)

    # ------------------------------------------------------------------ plumbing

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.dialect.rows(sql, params)

    def _transaction(self) -> contextlib.AbstractContextManager[Tx]:
        return self.dialect.transaction()

    def log_templates(self, tx: Tx, kind: str, rows: Sequence[tuple[int, str | None]]) -> None:
        """Log templates ``"add"``-ed or ``"remove"``-d by ``tx`` (where a change log is kept)."""
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
        return self.data_keys.named(rows, pid, name)

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
                f"gallery {self.location} holds templates made by another embedder (sha256 {state.model_id[:12]}...)",
                Fix.REEMBED_OR_OLD_MODEL
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
            self._refuse_while_copied(tx)
            self._check_model(tx, model_id, emb.shape[1])
            pid = self._find_person(tx, clean)
            if pid is not None and must_be_new:
                raise DuplicatePersonError(
                    f"a person named {clean!r} already exists", Fix.ADD_OR_RENAME
                )
            if pid is None:
                if not create:
                    raise unknown_person(clean)
                pid = new_row_id()
                wrapped = self.data_keys.new_person(pid)
                stored, key = self.data_keys.stored_name(pid, clean)
                level = self.data_keys.level(pid)
                tx.run("INSERT INTO persons (id, name, created_at, data_key, name_key, seal_level) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (pid, stored, now, wrapped, key, level))
            else:
                self.data_keys.open_keys([pid], tx)
                [(level,)] = tx.rows("SELECT seal_level FROM persons WHERE id = ?", (pid,))
            ids = [new_row_id() for _ in range(len(emb))]
            blobs = [self.data_keys.seal(pid, seal.TEMPLATE, ids[i], emb[i].tobytes()) or b"" for i in range(len(emb))]
            fields = self.data_keys.seal_text
            tx.many(
                "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id, checksum) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(ids[i], pid, blobs[i], now, fields(pid, seal.TEMPLATE_SOURCE, ids[i], sources[i], level),
                  fields(pid, seal.TEMPLATE_QUALITY, ids[i], json.dumps(qualities[i]) if qualities[i] else None, level),
                  self.data_keys.seal(pid, seal.TEMPLATE_CROP, ids[i], crops[i]), model_id,
                  integrity.checksum(ids[i], blobs[i])) for i in range(len(emb))],
            )
            self.log_templates(tx, "add", [(t, model_id) for t in ids])
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
            self.data_keys.open_keys([pid], tx)
            tx.run("UPDATE persons SET name = ?, name_key = ? WHERE id = ?", (*self.data_keys.stored_name(pid, target), pid))
            self._log_owner(tx, pid)
        return self.get_person(target)

    def merge(self, source: str, target: str) -> Person:
        with self._transaction() as tx:
            src = self._person_id(tx, source)
            dst = self._person_id(tx, target)
            if src == dst:
                raise GalleryError("cannot merge a person with themselves")
            self._log_owner(tx, src)
            self.data_keys.open_keys([src, dst], tx)
            self._move_fields(tx, src, dst)
            for table, kind, crop_kind in (("templates", seal.TEMPLATE, seal.TEMPLATE_CROP),
                                           ("negatives", seal.NEGATIVE, seal.NEGATIVE_CROP)):
                rows = tx.rows(f"SELECT id, embedding, crop FROM {table} WHERE person_id = ?", (src,))
                moved = []
                for rid, blob, crop in rows:  # opened with the source's key, sealed with the target's
                    e = self.data_keys.seal(dst, kind, int(rid), self.data_keys.open(src, kind, int(rid), blob)) or b""
                    c = self.data_keys.seal(dst, crop_kind, int(rid), self.data_keys.open(src, crop_kind, int(rid), crop))
                    moved.append((dst, e, c, integrity.checksum(int(rid), e), int(rid)))
                tx.many(f"UPDATE {table} SET person_id = ?, embedding = ?, crop = ?, checksum = ? WHERE id = ?", moved)
            tx.run("DELETE FROM persons WHERE id = ?", (src,))  # and with it the source's data key
        self.data_keys.forget(src)
        self.dialect.erased()  # the old name row is gone too
        return self.get_person(target)

    def _move_fields(self, tx: Tx, src: int, dst: int) -> None:
        """Inside ``tx``: the sources and qualities of ``src``'s templates, opened with ``src``'s key and
        sealed with ``dst``'s (as each person's ``seal_level`` says)."""
        keys = self.data_keys
        levels = {int(p): v for p, v in tx.rows("SELECT id, seal_level FROM persons WHERE id = ? OR id = ?", (src, dst))}

        def moved(kind: str, row_id: int, value: str | None) -> str | None:
            return keys.seal_text(dst, kind, row_id, keys.open_text(src, kind, row_id, value, levels[src]), levels[dst])

        tx.many("UPDATE templates SET source = ?, quality = ? WHERE id = ?",
                [(moved(seal.TEMPLATE_SOURCE, int(r), s), moved(seal.TEMPLATE_QUALITY, int(r), q), int(r))
                 for r, s, q in tx.rows("SELECT id, source, quality FROM templates WHERE person_id = ?", (src,))])

    def erase_templates(self, tx: Tx, where: str, params: Sequence[Any]) -> tuple[int, int]:
        """Delete template rows matching ``where`` and log them; returns (templates, crops)."""
        rows = tx.rows(f"DELETE FROM templates WHERE {where} RETURNING id, model_id, crop IS NOT NULL", params)
        self.log_templates(tx, "remove", [(int(t), m) for t, m, _ in rows])
        self._forget([int(t) for t, _, _ in rows])
        return len(rows), sum(1 for *_, c in rows if c)

    def erase_negatives(self, tx: Tx, where: str, params: Sequence[Any]) -> tuple[int, int]:
        """Delete negative samples matching ``where``; returns (negatives, crops)."""
        rows = tx.rows(f"DELETE FROM negatives WHERE {where} RETURNING crop IS NOT NULL", params)
        return len(rows), sum(1 for (c,) in rows if c)

    def remove(self, name: str) -> Erased:
        with self._transaction() as tx:
            pid = self._person_id(tx, name)
            n, c = self.erase_templates(tx, "person_id = ?", (pid,))
            neg, negc = self.erase_negatives(tx, "person_id = ?", (pid,))
            tx.run("DELETE FROM persons WHERE id = ?", (pid,))  # their data key and, by cascade, their events
        self.data_keys.forget(pid)
        return Erased(templates=n, crops=c + negc, negatives=neg, log_cleared=self.dialect.erased())

    def remove_template(self, template_id: int) -> Erased:
        with self._transaction() as tx:
            n, c = self.erase_templates(tx, "id = ?", (int(template_id),))
            if n == 0:
                raise UnknownPersonError(f"no sample {template_id} in the gallery; it may have been removed already")
        return Erased(templates=n, crops=c, log_cleared=self.dialect.erased())

    def samples(self, name: str) -> list[Sample]:
        pid = self.get_person(name).id
        rows = self._query(
            "SELECT t.id, t.crop, t.quality, t.source, t.created_at, t.model_id, p.seal_level FROM templates t "
            "JOIN persons p ON p.id = t.person_id WHERE t.person_id = ? ORDER BY t.created_at, t.id", (pid,)
        )
        keys = self.data_keys
        keys.open_keys([pid])
        out = []
        for i, c, q, s, t, m, level in rows:
            quality = keys.open_text(pid, seal.TEMPLATE_QUALITY, int(i), q, level)
            out.append(Sample(int(i), keys.open(pid, seal.TEMPLATE_CROP, int(i), c), json.loads(quality) if quality else None,
                              keys.open_text(pid, seal.TEMPLATE_SOURCE, int(i), s, level), float(t), m))
        return out

    def crops(self) -> Iterator[tuple[str, int, bytes]]:
        rows = self.named(self._query(
            "SELECT t.person_id, p.name, t.id, t.crop FROM templates t JOIN persons p ON p.id = t.person_id "
            "WHERE t.crop IS NOT NULL"), 0, 1)
        for pid, name, tid, crop in sorted(rows, key=lambda r: (r[1], r[2])):
            yield name, int(tid), self.data_keys.open(pid, seal.TEMPLATE_CROP, int(tid), crop) or b""

    # ------------------------------------------------------------------ negatives

    def add_negative(self, name: str, embedding: np.ndarray, *, model_id: str, crop: bytes | None) -> int:
        emb = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).reshape(-1))
        with self._transaction() as tx:
            self._refuse_while_copied(tx)
            pid = self._person_id(tx, name)
            stored = state_from_row(tx.rows(self.dialect.state_sql)[0]).model_id
            if stored is not None and stored != model_id:
                raise GalleryMismatchError(
                    f"gallery {self.location} holds templates made by another embedder", Fix.REEMBED_FIRST
                )
            nid = new_row_id()
            self.data_keys.open_keys([pid], tx)
            blob = self.data_keys.seal(pid, seal.NEGATIVE, nid, emb.tobytes()) or b""
            tx.run("INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at, checksum) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (nid, pid, blob, model_id, self.data_keys.seal(pid, seal.NEGATIVE_CROP, nid, crop), time.time(),
                    integrity.checksum(nid, blob)))
            return nid

    def negatives(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Person ids and vectors of the intact negative samples of ``model_id`` (damaged ones are left out)."""
        rows = self._query("SELECT id, person_id, embedding, checksum FROM negatives WHERE model_id = ? ORDER BY id",
                           (model_id,))
        self.data_keys.open_keys({r[1] for r in rows})
        kept = [(int(p), v) for r, p, b, c in rows
                if (v := self.data_keys.vector(p, seal.NEGATIVE, r, b, c, None)[0]) is not None]
        if not kept:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        pids = np.array([p for p, _ in kept], np.int64)
        return pids, np.stack([np.frombuffer(v, np.float32) for _, v in kept])

    def negative_samples(self, model_id: str) -> list[tuple[int, np.ndarray, bytes | None]]:
        rows = self._query("SELECT id, person_id, embedding, crop FROM negatives WHERE model_id = ? ORDER BY id",
                           (model_id,))
        self.data_keys.open_keys({r[1] for r in rows})
        return [(int(p), np.frombuffer(self.data_keys.open(p, seal.NEGATIVE, r, e) or b"", np.float32),
                 self.data_keys.open(p, seal.NEGATIVE_CROP, r, c)) for r, p, e, c in rows]

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
            self.data_keys.open_keys({r[1] for r in rows})
            sealed = [(int(p), int(t), as_bytes(b)) for t, p, b, _ in rows if self.data_keys.sealed(p)]
            opened = self.data_keys.open_rows(seal.TEMPLATE, sealed)
            tampered += sum(1 for d in opened if d is None)
            found = [(t, d) for (_, t, _), d in zip(sealed, opened, strict=True) if d is not None]
            found += [(int(t), data) for t, p, b, crc in rows if not self.data_keys.sealed(p)
                      if crc is None or integrity.checksum(int(t), data := as_bytes(b)) == int(crc)]
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
                                "check (changed, damaged, or copied from another row)", Fix.CHECK_TEMPLATES)
        if not ok.all():
            raise GalleryError(f"gallery {self.location} has {int((~ok).sum())} damaged template(s)", Fix.CHECK_TEMPLATES)
        return out

    def damaged(self) -> list[integrity.Damaged]:
        """Every stored template and negative sample that is not what was written (see :class:`Rebuilder`)."""
        return self.rebuilder.damaged()

    def repair(self, kind: str, row_id: int, vector: np.ndarray) -> None:
        """Put a newly made vector (from the row's own crop) in place of a damaged one."""
        self.rebuilder.repair(kind, row_id, vector)

    def owners(self, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        out: dict[int, tuple[int, str]] = {}
        for cond, params in self.dialect.id_chunks("t.id", [int(x) for x in ids]):
            out.update({int(t): (int(p), n) for t, p, n in self.named(self._query(OWNERS_SQL + cond, params), 1, 2)})
        return out

    # ------------------------------------------------------------------ re-embedding (see Rebuilder)

    def reembed_status(self, model_id: str) -> ReembedStatus:
        return self.rebuilder.reembed_status(model_id)

    def reembed_work(self, model_id: str, limit: int) -> list[ReembedWork]:
        return self.rebuilder.reembed_work(model_id, limit)

    def add_reembedded(self, model_id: str, rows: Sequence[tuple[ReembedWork, np.ndarray]]) -> None:
        """Store new-model rows beside the old ones; searches keep using the old model until finished."""
        self.rebuilder.add_reembedded(model_id, rows)

    def finish_reembed(self, model_id: str) -> Erased:
        """Switch the gallery to ``model_id`` and erase every row of other models."""
        return self.rebuilder.finish_reembed(model_id)

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
