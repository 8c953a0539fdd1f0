"""A gallery store in a folder: one SQLite database in WAL mode, private and really erased.

Files, all ``0600`` in a ``0700`` folder:

* ``gallery.sqlite3`` (+ ``-wal``, ``-shm``): people, templates (float32 blobs with the
  model id and the aligned face crop they were made from), negative samples, and ``meta``
  (schema version, gallery id, generation, the model whose templates are searched);
* ``write.lock``: serialises writers across processes (the GUI and the CLI may share a
  gallery). Readers never take it: WAL lets them read while a writer writes.

Every commit is ``synchronous=FULL``. ``secure_delete`` is on, and a removal ends with a
``wal_checkpoint(TRUNCATE)``, so no byte of a removed template, crop or negative stays in
the database, its free pages or its log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceapp import private
from faceapp.errors import (
    DuplicatePersonError,
    GalleryError,
    GalleryFullError,
    GalleryLockedError,
    GalleryMismatchError,
    GalleryReadOnlyError,
    UnknownPersonError,
)
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

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DB_NAME = "gallery.sqlite3"
LOCK_NAME = "write.lock"
_CHUNK = 900  # SQLite's default limit on bound parameters is 999

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    created_at REAL NOT NULL,
    source TEXT,
    quality TEXT,
    crop BLOB,
    model_id TEXT,
    derived_from INTEGER
);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
-- A covering index: keeping the index in step reads template ids without touching the rows
-- (which carry the embedding and the face crop).
CREATE INDEX IF NOT EXISTS templates_model ON templates(model_id, id);
CREATE TABLE IF NOT EXISTS negatives (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    model_id TEXT NOT NULL,
    crop BLOB,
    created_at REAL NOT NULL,
    derived_from INTEGER
);
CREATE INDEX IF NOT EXISTS negatives_person ON negatives(person_id);
"""

# Schema 1 (the first release) kept crops as ``thumbnail``, one model for the whole gallery
# in meta, and had no gallery id and no negatives.
_MIGRATE_1_TO_2 = """
ALTER TABLE templates RENAME COLUMN thumbnail TO crop;
ALTER TABLE templates ADD COLUMN model_id TEXT;
ALTER TABLE templates ADD COLUMN derived_from INTEGER;
UPDATE templates SET model_id = (SELECT value FROM meta WHERE key = 'model_sha256');
"""




def open_private_db(path: Path, timeout: float) -> sqlite3.Connection:
    """A writable SQLite database for biometric data: created ``0600`` (its ``-wal`` and
    ``-shm`` files take the same mode), WAL, ``secure_delete``, ``synchronous=FULL``."""
    private.create_private_file(path)
    db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA synchronous = FULL")
    return db


def truncate_wal(db: sqlite3.Connection, what: str) -> bool:
    """Empty the write-ahead log so no earlier page image of erased rows survives.

    Returns:
        Whether it was emptied (not while another connection still reads an older state).
    """
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        log.warning("could not clear the write-ahead log of %s (%s)", what, exc)
        return False
    if busy:
        log.warning("another faceapp process is reading %s; its write-ahead log will be cleared when that "
                    "process closes", what)
    return not busy


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SQLiteStore:
    """A :class:`~faceapp.gallery.store.Store` in a folder.

    Args:
        root: the gallery folder; created (``0700``) when missing.
        lock_timeout: seconds a writer waits for another process's write to finish.

    Raises:
        GalleryError: the folder cannot be created, the database is missing beside an
            existing index, empty, damaged, or written by a newer faceapp.
    """

    def __init__(self, root: Path, *, lock_timeout: float = 10.0) -> None:
        import filelock

        self.root = Path(root).expanduser()
        self.location = str(self.root)
        self.lock_timeout = lock_timeout
        self.db_path = self.root / DB_NAME
        self.permission_note: str | None = None
        existed = self.root.is_dir()
        try:
            private.make_private_dir(self.root)
        except OSError as exc:
            raise GalleryError(
                f"cannot create gallery folder {self.root} ({exc.strerror}); choose another folder"
            ) from exc
        self.read_only = not os.access(self.root, os.W_OK | os.X_OK) or (
            self.db_path.exists() and not os.access(self.db_path, os.W_OK)
        )
        if existed:
            if not self.read_only:
                self.permission_note = private.tighten(self.root)
            elif private.loose_entries(self.root):
                self.permission_note = f"gallery {self.root} is readable by other users (read-only: not changed)"
            if self.permission_note:
                log.warning("%s", self.permission_note)
        self._mutex = threading.RLock()
        if not self.read_only:
            private.create_private_file(self.root / LOCK_NAME)
        self._file_lock = filelock.FileLock(str(self.root / LOCK_NAME))
        if self.read_only or (self.db_path.exists() and self.db_path.stat().st_size > 0):
            self._db = self._connect()
        else:  # a new gallery is created under the write lock, so nobody sees it half-made
            with self._write():
                self._check_not_orphaned()
                self._db = self._connect()

    # ------------------------------------------------------------------ opening

    def _check_not_orphaned(self) -> None:
        """Under the write lock, before creating: a missing or 0-byte database is damage when
        the gallery's other files are there (a 0-byte one always: creation writes it under
        this lock)."""
        from faceapp.gallery.vindex import INDEX_FILES

        others = [n for n in (*INDEX_FILES, DB_NAME + "-wal") if (self.root / n).exists()]
        if self.db_path.exists() and self.db_path.stat().st_size == 0:
            raise GalleryError(
                f"gallery database {self.db_path} is empty (0 bytes), so the gallery is damaged; "
                "restore gallery.sqlite3 from a backup, or move the folder aside to start a new gallery"
            )
        if not self.db_path.exists() and others:
            raise GalleryError(
                f"gallery database {self.db_path} is missing but the gallery's other files are there; "
                "restore gallery.sqlite3 from a backup, or move the folder aside to start a new gallery"
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                if not self.db_path.exists():
                    raise GalleryReadOnlyError(f"gallery {self.root} is read-only and has no database yet")
                db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=self.lock_timeout,
                                     isolation_level=None, check_same_thread=False)
                try:
                    db.execute("SELECT 1 FROM sqlite_master").fetchall()
                except sqlite3.OperationalError:  # WAL on a medium where the -shm cannot be made
                    db.close()
                    db = sqlite3.connect(f"file:{self.db_path}?immutable=1", uri=True, isolation_level=None,
                                         check_same_thread=False)
            else:
                db = open_private_db(self.db_path, self.lock_timeout)
            if self.read_only:
                db.execute("PRAGMA foreign_keys = ON")
                db.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
            self._db = db
            self._prepare_schema(db)
            return db
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _prepare_schema(self, db: sqlite3.Connection) -> None:
        has_meta = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        version = 0
        if has_meta:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if row is None or version > SCHEMA_VERSION:
                raise GalleryError(
                    f"gallery {self.root} was written by a newer faceapp (schema {row and row[0]}); upgrade faceapp"
                )
            if version == SCHEMA_VERSION:
                return
        if self.read_only:
            raise GalleryReadOnlyError(
                f"gallery {self.root} needs an upgrade but is read-only; open it once where it can be written"
            )
        with self._write():
            db.execute("BEGIN IMMEDIATE")
            try:
                if version == 1:
                    for stmt in filter(None, (s.strip() for s in _MIGRATE_1_TO_2.split(";"))):
                        db.execute(stmt)
                    log.warning("gallery %s upgraded to schema %d (crops and model ids per template)",
                                self.root, SCHEMA_VERSION)
                for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    db.execute(stmt)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('gallery_id', ?)", (secrets.token_hex(16),))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def _error(self, exc: sqlite3.Error) -> GalleryError:
        text = str(exc)
        code = getattr(exc, "sqlite_errorname", "")
        if code == "SQLITE_FULL" or "disk is full" in text:
            return GalleryFullError(
                f"the disk holding gallery {self.root} is full; nothing was changed: free some space and try again"
            )
        if "locked" in text or "busy" in text:
            return GalleryLockedError(f"gallery {self.root} is busy in another faceapp process; try again when it finishes")
        if "readonly" in text or "read-only" in text:
            return GalleryReadOnlyError(
                f"gallery {self.root} is read-only: it can be listed and matched, not changed; fix its permissions"
            )
        return GalleryError(
            f"gallery database {self.db_path} is damaged ({text}); restore it from a backup "
            "(see 'Privacy and your data' in the README)"
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """Hold the cross-process write lock (and this process's mutex)."""
        import filelock

        if self.read_only:
            raise GalleryReadOnlyError(
                f"gallery {self.root} is read-only: it can be listed and matched, not changed; fix its permissions"
            )
        with self._mutex:
            try:
                self._file_lock.acquire(timeout=self.lock_timeout)
            except filelock.Timeout as exc:
                raise GalleryLockedError(
                    f"gallery {self.root} is locked by another faceapp process (an enrolment or import?); "
                    "try again when it finishes"
                ) from exc
            except OSError as exc:
                raise GalleryError(f"cannot lock gallery {self.root} ({exc.strerror}); check its permissions") from exc
            try:
                yield
            finally:
                self._file_lock.release()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction under the write lock; bumps the generation on commit."""
        with self._write():
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                yield db
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise

    def _clear_log(self) -> bool:
        """Empty the write-ahead log so no earlier page image of erased rows survives."""
        with self._mutex:
            return truncate_wal(self._db, "the gallery")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _meta(self, db: sqlite3.Connection | None = None) -> dict[str, str]:
        if db is None:
            return {k: v for k, v in self._query("SELECT key, value FROM meta")}
        return {k: v for k, v in db.execute("SELECT key, value FROM meta")}

    # ------------------------------------------------------------------ state

    def state(self) -> StoreState:
        meta = self._meta()
        dim = meta.get("dim")
        return StoreState(gallery_id=meta["gallery_id"], generation=int(meta["generation"]),
                          model_id=meta.get("model_sha256"), dim=int(dim) if dim else None)

    def model_counts(self) -> dict[str, int]:
        rows = self._query("SELECT COALESCE(model_id, '?'), COUNT(*) FROM templates GROUP BY model_id")
        return {m: int(c) for m, c in rows}

    # ------------------------------------------------------------------ people

    def list_persons(self, search: str | None = None) -> list[Person]:
        sql = "SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p LEFT JOIN templates t ON t.person_id = p.id "
        params: tuple[Any, ...] = ()
        if search:
            sql += "WHERE p.name LIKE ? ESCAPE '\\' "
            params = (_like(search),)
        sql += "GROUP BY p.id ORDER BY p.name COLLATE NOCASE"
        return [Person(int(i), n, int(c), float(t)) for i, n, c, t in self._query(sql, params)]

    def get_person(self, name: str) -> Person:
        rows = self._query(
            "SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p LEFT JOIN templates t "
            "ON t.person_id = p.id WHERE p.name = ? COLLATE NOCASE GROUP BY p.id",
            (normalise_name(name),),
        )
        if not rows:
            raise unknown_person(name)
        i, n, c, t = rows[0]
        return Person(int(i), n, int(c), float(t))

    def count_persons(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM persons")[0][0])

    def count_templates(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM templates")[0][0])

    @staticmethod
    def _person_id(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id FROM persons WHERE name = ? COLLATE NOCASE", (normalise_name(name),)).fetchone()
        if row is None:
            raise unknown_person(name)
        return int(row[0])

    def _check_model(self, db: sqlite3.Connection, model_id: str, dim: int) -> None:
        """Inside a write transaction: refuse templates of another embedder or size."""
        meta = self._meta(db)
        stored = meta.get("model_sha256")
        if db.execute("SELECT NOT EXISTS (SELECT 1 FROM templates)").fetchone()[0]:
            return
        if stored is not None and stored != model_id:
            raise GalleryMismatchError(
                f"gallery {self.root} holds templates made by another embedder (sha256 {stored[:12]}...); "
                "run `faceapp-cli reembed` to rebuild them with this model, or use the model they were made with"
            )
        if meta.get("dim") is not None and int(meta["dim"]) != dim:
            raise GalleryMismatchError(f"gallery {self.root} holds {meta['dim']}-d templates, the model gives {dim}-d")

    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      crops: Sequence[bytes | None], sources: Sequence[str | None],
                      qualities: Sequence[dict[str, float] | None], create: bool, must_be_new: bool) -> Person:
        clean = normalise_name(name)
        emb = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        now = time.time()
        with self._transaction() as db:
            self._check_model(db, model_id, emb.shape[1])
            row = db.execute("SELECT id FROM persons WHERE name = ? COLLATE NOCASE", (clean,)).fetchone()
            if row is not None and must_be_new:
                raise DuplicatePersonError(
                    f"a person named {clean!r} already exists; use --add to add these photos to them or choose another name"
                )
            if row is None:
                if not create:
                    raise unknown_person(clean)
                pid = int(db.execute("INSERT INTO persons (name, created_at) VALUES (?, ?)", (clean, now)).lastrowid or 0)
            else:
                pid = int(row[0])
            db.executemany(
                "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(new_row_id(), pid, emb[i].tobytes(), now, sources[i],
                  json.dumps(qualities[i]) if qualities[i] else None, crops[i], model_id) for i in range(len(emb))],
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('model_sha256', ?)", (model_id,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(emb.shape[1]),))
        return self.get_person(clean)

    def rename(self, old: str, new: str) -> Person:
        target = normalise_name(new)
        with self._transaction() as db:
            pid = self._person_id(db, old)
            other = db.execute("SELECT id FROM persons WHERE name = ? COLLATE NOCASE", (target,)).fetchone()
            if other is not None and int(other[0]) != pid:
                raise DuplicatePersonError(f"a person named {target!r} already exists; choose another name")
            db.execute("UPDATE persons SET name = ? WHERE id = ?", (target, pid))
        return self.get_person(target)

    def merge(self, source: str, target: str) -> Person:
        with self._transaction() as db:
            src = self._person_id(db, source)
            dst = self._person_id(db, target)
            if src == dst:
                raise GalleryError("cannot merge a person with themselves")
            db.execute("UPDATE templates SET person_id = ? WHERE person_id = ?", (dst, src))
            db.execute("UPDATE negatives SET person_id = ? WHERE person_id = ?", (dst, src))
            db.execute("DELETE FROM persons WHERE id = ?", (src,))
        self._clear_log()  # the old name row is gone too
        return self.get_person(target)

    def _erase(self, db: sqlite3.Connection, where: str, params: Sequence[Any]) -> tuple[int, int]:
        """Delete template rows matching ``where``; returns (templates, crops)."""
        n, c = db.execute(f"SELECT COUNT(*), COUNT(crop) FROM templates WHERE {where}", params).fetchone()
        db.execute(f"DELETE FROM templates WHERE {where}", params)
        return int(n), int(c)

    def remove(self, name: str) -> Erased:
        with self._transaction() as db:
            pid = self._person_id(db, name)
            n, c = self._erase(db, "person_id = ?", (pid,))
            neg, negc = db.execute("SELECT COUNT(*), COUNT(crop) FROM negatives WHERE person_id = ?", (pid,)).fetchone()
            db.execute("DELETE FROM negatives WHERE person_id = ?", (pid,))
            db.execute("DELETE FROM persons WHERE id = ?", (pid,))
        return Erased(templates=n, crops=c + int(negc), negatives=int(neg), log_cleared=self._clear_log())

    def remove_template(self, template_id: int) -> Erased:
        with self._transaction() as db:
            n, c = self._erase(db, "id = ?", (int(template_id),))
            if n == 0:
                raise UnknownPersonError(f"no sample {template_id} in the gallery; it may have been removed already")
        return Erased(templates=n, crops=c, log_cleared=self._clear_log())

    def samples(self, name: str) -> list[Sample]:
        pid = self.get_person(name).id
        rows = self._query(
            "SELECT id, crop, quality, source, created_at, model_id FROM templates WHERE person_id = ? "
            "ORDER BY created_at, id", (pid,)
        )
        return [Sample(int(i), c, json.loads(q) if q else None, s, float(t), m) for i, c, q, s, t, m in rows]

    def crops(self) -> Iterator[tuple[str, int, bytes]]:
        rows = self._query(
            "SELECT p.name, t.id, t.crop FROM templates t JOIN persons p ON p.id = t.person_id "
            "WHERE t.crop IS NOT NULL ORDER BY p.name, t.id"
        )
        for name, tid, crop in rows:
            yield name, int(tid), crop

    # ------------------------------------------------------------------ negatives

    def add_negative(self, name: str, embedding: np.ndarray, *, model_id: str, crop: bytes | None) -> int:
        emb = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).reshape(-1))
        with self._transaction() as db:
            pid = self._person_id(db, name)
            stored = self._meta(db).get("model_sha256")
            if stored is not None and stored != model_id:
                raise GalleryMismatchError(
                    f"gallery {self.root} holds templates made by another embedder; run `faceapp-cli reembed` first"
                )
            nid = new_row_id()
            db.execute(
                "INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (nid, pid, emb.tobytes(), model_id, crop, time.time()),
            )
            return nid

    def negatives(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self._query("SELECT person_id, embedding FROM negatives WHERE model_id = ? ORDER BY id", (model_id,))
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        pids = np.array([int(p) for p, _ in rows], np.int64)
        return pids, np.stack([np.frombuffer(e, np.float32) for _, e in rows])

    def negative_samples(self, model_id: str) -> list[tuple[int, np.ndarray, bytes | None]]:
        rows = self._query("SELECT person_id, embedding, crop FROM negatives WHERE model_id = ? ORDER BY id", (model_id,))
        return [(int(p), np.frombuffer(e, np.float32), None if c is None else bytes(c)) for p, e, c in rows]

    # ------------------------------------------------------------------ what an index is built from

    def template_ids(self, model_id: str) -> np.ndarray:
        rows = self._query("SELECT id FROM templates WHERE model_id = ? ORDER BY id", (model_id,))
        return np.array([r[0] for r in rows], dtype=np.int64)

    def changes_since(self, generation: int, model_id: str) -> Changes | None:
        """Always ``None``: a folder keeps no change log, and comparing its ids is fast."""
        return None

    def embeddings(self, ids: np.ndarray, dim: int) -> np.ndarray:
        out = np.empty((len(ids), dim), np.float32)
        pos = {int(t): i for i, t in enumerate(ids)}
        with self._mutex:
            try:
                for start in range(0, len(ids), _CHUNK):
                    part = [int(x) for x in ids[start : start + _CHUNK]]
                    marks = ",".join("?" * len(part))
                    for tid, blob in self._db.execute(f"SELECT id, embedding FROM templates WHERE id IN ({marks})", part):
                        out[pos[int(tid)]] = np.frombuffer(blob, np.float32)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return out

    def owners(self, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        out: dict[int, tuple[int, str]] = {}
        ids = [int(x) for x in ids]
        for start in range(0, len(ids), _CHUNK):
            part = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._query(
                f"SELECT t.id, p.id, p.name FROM templates t JOIN persons p ON p.id = t.person_id WHERE t.id IN ({marks})",
                part,
            )
            out.update({int(t): (int(p), n) for t, p, n in rows})
        return out

    # ------------------------------------------------------------------ re-embedding

    def reembed_status(self, model_id: str) -> ReembedStatus:
        done = self._query("SELECT COUNT(*) FROM templates WHERE model_id = ? AND derived_from IS NOT NULL", (model_id,))
        pending = self._query(
            "SELECT COUNT(*) FROM templates o WHERE o.model_id IS NOT ? AND o.crop IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM templates n WHERE n.derived_from = o.id AND n.model_id = ?)", (model_id, model_id)
        )
        lost = self._query(
            "SELECT DISTINCT p.name FROM templates t JOIN persons p ON p.id = t.person_id "
            "WHERE t.model_id IS NOT ? AND t.crop IS NULL ORDER BY p.name COLLATE NOCASE", (model_id,)
        )
        return ReembedStatus(done=int(done[0][0]), pending=int(pending[0][0]), without_crop=tuple(r[0] for r in lost))

    def reembed_work(self, model_id: str, limit: int) -> list[ReembedWork]:
        rows = self._query(
            "SELECT 'template', o.id, o.crop FROM templates o WHERE o.model_id IS NOT ? AND o.crop IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM templates n WHERE n.derived_from = o.id AND n.model_id = ?) "
            "UNION ALL SELECT 'negative', o.id, o.crop FROM negatives o WHERE o.model_id IS NOT ? AND o.crop IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM negatives n WHERE n.derived_from = o.id AND n.model_id = ?) "
            "ORDER BY 2 LIMIT ?", (model_id, model_id, model_id, model_id, int(limit))
        )
        return [ReembedWork(k, int(i), c) for k, i, c in rows]

    def add_reembedded(self, model_id: str, rows: Sequence[tuple[ReembedWork, np.ndarray]]) -> None:
        """Store new-model rows beside the old ones; searches keep using the old model until finished."""
        with self._transaction() as db:
            for work, emb in rows:
                blob = np.ascontiguousarray(emb, dtype=np.float32).tobytes()
                if work.kind == "template":
                    db.execute(
                        "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id, "
                        "derived_from) SELECT ?, person_id, ?, created_at, source, quality, crop, ?, id FROM templates "
                        "WHERE id = ?", (new_row_id(), blob, model_id, work.row_id))
                else:
                    db.execute(
                        "INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at, derived_from) "
                        "SELECT ?, person_id, ?, ?, crop, created_at, id FROM negatives WHERE id = ?",
                        (new_row_id(), blob, model_id, work.row_id))

    def finish_reembed(self, model_id: str) -> Erased:
        """Switch the gallery to ``model_id`` and erase every row of other models.

        People whose templates could not be rebuilt (no crop) stay listed, with no
        templates, until they are enrolled again.
        """
        with self._transaction() as db:
            dim = db.execute("SELECT length(embedding) / 4 FROM templates WHERE model_id = ? LIMIT 1", (model_id,)).fetchone()
            n, c = self._erase(db, "model_id IS NOT ?", (model_id,))
            neg = db.execute("SELECT COUNT(*) FROM negatives WHERE model_id IS NOT ?", (model_id,)).fetchone()[0]
            db.execute("DELETE FROM negatives WHERE model_id IS NOT ?", (model_id,))
            db.execute("UPDATE templates SET derived_from = NULL")
            db.execute("UPDATE negatives SET derived_from = NULL")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('model_sha256', ?)", (model_id,))
            if dim is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(int(dim[0])),))
        return Erased(templates=n, crops=c, negatives=int(neg), log_cleared=self._clear_log())

    # ------------------------------------------------------------------ housekeeping

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "folder",
            "path": str(self.root),
            "read_only": self.read_only,
            "database_bytes": self.db_path.stat().st_size if self.db_path.exists() else 0,
            "permissions": private.describe_modes(self.root),
            "private": not private.loose_entries(self.root),
        }

    def check(self) -> str:
        return "; ".join(str(r[0]) for r in self._query("PRAGMA integrity_check"))

    def close(self) -> None:
        with self._mutex:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
