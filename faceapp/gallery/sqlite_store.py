"""The SQLite dialect: a gallery store in a folder, one database in WAL mode, private and really erased.

Files, all ``0600`` in a ``0700`` folder:

* ``gallery.sqlite3`` (+ ``-wal``, ``-shm``): people, templates (float32 blobs with the
  model id and the aligned face crop they were made from), negative samples, ``meta``
  (schema version, gallery id, generation, the model whose templates are searched), and
  the event history when it is kept (``events``, see :mod:`faceapp.gallery.events`: erased
  with the person, pruned by the retention);
* ``write.lock``: serialises writers across processes (the GUI and the CLI may share a
  gallery). Readers never take it: WAL lets them read while a writer writes.

Every commit is ``synchronous=FULL``. ``secure_delete`` is on, and a removal ends with a
``wal_checkpoint(TRUNCATE)``, so no byte of a removed template, crop or negative stays in
the database, its free pages or its log. The queries are :class:`~faceapp.gallery.sql_store.SQLStore`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from faceapp import private
from faceapp.errors import GalleryError, GalleryFullError, GalleryLockedError, GalleryReadOnlyError
from faceapp.gallery import integrity
from faceapp.gallery.keys import KeyStore
from faceapp.gallery.sql_store import Row, SQLStore

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
DB_NAME = "gallery.sqlite3"
LOCK_NAME = "write.lock"
# Written once the database exists (and on every writable open), never before: a folder with
# this mark and no database has lost its database. The write lock cannot tell, since a second
# process creating the same new gallery sees the first one's lock before its database.
MARK_NAME = "gallery.created"
MIN_SQLITE = (3, 35)  # DELETE ... RETURNING
_CHUNK = 900  # SQLite's default limit on bound parameters is 999
_META = "(SELECT value FROM meta WHERE key = '{}')"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at REAL NOT NULL,
    data_key BLOB,
    name_key TEXT,
    seal_level INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS persons_name_key ON persons(name_key);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    created_at REAL NOT NULL,
    source TEXT,
    quality TEXT,
    crop BLOB,
    model_id TEXT,
    derived_from INTEGER,
    checksum INTEGER
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
    derived_from INTEGER,
    checksum INTEGER
);
CREATE INDEX IF NOT EXISTS negatives_person ON negatives(person_id);
"""

# The event history (faceapp.gallery.events) came after schema 3 without changing what older
# faceapp versions read: they leave the table alone, and removing a person still erases
# their events by the cascade. A read-only gallery without it gets an empty one in memory.
_EVENTS = """
CREATE {temp} TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    person_id INTEGER {references},
    decision TEXT NOT NULL,
    similarity REAL,
    track_id INTEGER,
    box TEXT,
    source TEXT NOT NULL,
    device TEXT NOT NULL,
    snapshot BLOB
);
CREATE INDEX IF NOT EXISTS {schema}events_time ON events(time);
CREATE INDEX IF NOT EXISTS {schema}events_person ON events(person_id)
"""

# Schema 1 (the first release) kept crops as ``thumbnail``, one model for the whole gallery
# in meta, and had no gallery id and no negatives.
_MIGRATE_1_TO_2 = """
ALTER TABLE templates RENAME COLUMN thumbnail TO crop;
ALTER TABLE templates ADD COLUMN model_id TEXT;
ALTER TABLE templates ADD COLUMN derived_from INTEGER;
UPDATE templates SET model_id = (SELECT value FROM meta WHERE key = 'model_sha256');
"""
# Schema 2 kept no checksum of the stored vectors: the upgrade adds the column and fills it.
# Schema 3 kept no data keys: the upgrade adds the column; :meth:`SQLStore.unlock` encrypts.
_MIGRATE_3_TO_4 = ("ALTER TABLE persons ADD COLUMN data_key BLOB", "ALTER TABLE persons ADD COLUMN name_key TEXT")
# Schema 4 kept templates' sources and qualities in the clear: the upgrade adds what of a person is
# sealed (faceapp.gallery.encryption.FIELDS_SEALED); :meth:`SQLStore.unlock` seals them.
_MIGRATE_4_TO_5 = "ALTER TABLE persons ADD COLUMN seal_level INTEGER"



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


class _SQLiteTx:
    """An open write transaction on a SQLite connection."""

    def __init__(self, db: sqlite3.Connection, generation: int) -> None:
        self.db = db
        self.generation = generation

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.db.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.db.execute(sql, params)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)


class SQLiteDialect:
    """A gallery folder's database: connection, schema, locking and errors.

    Args:
        root: the gallery folder; created (``0700``) when missing.
        lock_timeout: seconds a writer waits for another process's write to finish.

    Raises:
        GalleryError: the folder cannot be created, the database is missing beside an
            existing index, empty, damaged, or written by a newer faceapp.
    """

    distinct = "IS NOT"
    find = "instr"
    state_sql = "SELECT " + ", ".join(_META.format(k) for k in ("gallery_id", "generation", "model_sha256", "dim"))
    set_model_sql = "INSERT OR REPLACE INTO meta VALUES ('model_sha256', ?)"
    set_dim_sql = "INSERT OR REPLACE INTO meta VALUES ('dim', ?)"
    key_check_sql = "SELECT " + _META.format("key_check")
    set_key_check_sql = "INSERT OR REPLACE INTO meta VALUES ('key_check', ?)"
    claim_key_check_sql = "INSERT OR IGNORE INTO meta VALUES ('key_check', ?) RETURNING value"
    copy_mark_sql = "SELECT " + _META.format("incomplete_copy")
    mark_copy_sql = "INSERT OR REPLACE INTO meta VALUES ('incomplete_copy', ?)"
    clear_copy_sql = "DELETE FROM meta WHERE key = 'incomplete_copy'"

    def __init__(self, root: Path, *, lock_timeout: float = 10.0) -> None:
        import filelock

        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise GalleryError(f"a gallery folder needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer and this "
                               f"Python has {sqlite3.sqlite_version}; use a newer Python or operating system")
        self.root = Path(root).expanduser()
        self.location = str(self.root)
        self.lock_timeout = lock_timeout
        self.db_path = self.root / DB_NAME
        existed = self.root.is_dir()
        if not existed:  # an existing folder is opened as it is (a read-only one for reading)
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
            note = private.tighten(self.root) if not self.read_only else (
                f"gallery {self.root} is readable by other users (read-only: not changed)"
                if private.loose_entries(self.root) else None)
            if note:
                log.warning("%s", note)
        self._mutex = threading.RLock()
        self._was_gallery = (self.root / MARK_NAME).exists()
        if not self.read_only:
            private.create_private_file(self.root / LOCK_NAME)
        self._file_lock = filelock.FileLock(str(self.root / LOCK_NAME))
        if self.read_only or (self.db_path.exists() and self.db_path.stat().st_size > 0):
            self.db = self._connect()
        else:  # a new gallery is created under the write lock, so nobody sees it half-made
            with self._write():
                self._check_not_orphaned()
                self.db = self._connect()
        if not self.read_only and not self._was_gallery:
            private.create_private_file(self.root / MARK_NAME)

    @staticmethod
    def fold(expr: str) -> str:
        return f"{expr} COLLATE NOCASE"

    @staticmethod
    def id_chunks(column: str, ids: Sequence[int]) -> Iterator[tuple[str, list[Any]]]:
        for start in range(0, len(ids), _CHUNK):
            part = list(ids[start : start + _CHUNK])
            yield f"{column} IN ({','.join('?' * len(part))})", part

    # ------------------------------------------------------------------ opening

    def _check_not_orphaned(self) -> None:
        """Under the write lock, before creating: a missing or 0-byte database is damage when
        the gallery's other files are there (a 0-byte one always: creation writes it under
        this lock)."""
        from faceapp.gallery.vindex import INDEX_FILES

        others = [n for n in (*INDEX_FILES, DB_NAME + "-wal") if (self.root / n).exists()]
        others += [MARK_NAME] if self._was_gallery else []
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
            self.db = db
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
                self._prepare_events(db)
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
                if version in (1, 2, 3) and "data_key" not in {r[1] for r in db.execute("PRAGMA table_info(persons)")}:
                    for stmt in _MIGRATE_3_TO_4:
                        db.execute(stmt)
                if version in (1, 2, 3, 4) and "seal_level" not in {r[1] for r in db.execute("PRAGMA table_info(persons)")}:
                    db.execute(_MIGRATE_4_TO_5)
                for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    db.execute(stmt)
                if version in (1, 2):
                    for table in ("templates", "negatives"):
                        if "checksum" not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                            db.execute(f"ALTER TABLE {table} ADD COLUMN checksum INTEGER")
                        rows = db.execute(f"SELECT id, embedding FROM {table}").fetchall()
                        db.executemany(f"UPDATE {table} SET checksum = ? WHERE id = ?",
                                       [(integrity.checksum(r, bytes(b)), r) for r, b in rows])
                    log.warning("gallery %s upgraded to schema %d (a checksum per stored vector)", self.root,
                                SCHEMA_VERSION)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('gallery_id', ?)", (secrets.token_hex(16),))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        self._prepare_events(db)

    def _prepare_events(self, db: sqlite3.Connection) -> None:
        """Make the ``events`` table when it is missing (see :data:`_EVENTS`)."""
        if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='events'").fetchone():
            return
        if self.read_only:  # nothing can be recorded here: an empty history in memory
            sql = _EVENTS.format(temp="TEMP", references="", schema="temp.")
        else:
            sql = _EVENTS.format(temp="", references="REFERENCES persons(id) ON DELETE CASCADE", schema="")
        for stmt in filter(None, (s.strip() for s in sql.split(";"))):
            db.execute(stmt)

    def _error(self, exc: sqlite3.Error) -> GalleryError:
        text = str(exc)
        code = getattr(exc, "sqlite_errorname", "")
        if code == "SQLITE_FULL" or "disk is full" in text or private.disk_is_full(self.root):
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
    def transaction(self) -> Iterator[_SQLiteTx]:
        """A write transaction under the write lock that bumps the generation."""
        with self._begin(bump=True) as tx:
            yield tx

    @contextlib.contextmanager
    def batch(self) -> Iterator[_SQLiteTx]:
        """A write transaction that is not a gallery write (the event history: no generation)."""
        with self._begin(bump=False) as tx:
            yield tx

    @contextlib.contextmanager
    def _begin(self, *, bump: bool) -> Iterator[_SQLiteTx]:
        with self._write():
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                generation = -1
                if bump:
                    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                    generation = int(db.execute(f"SELECT {_META.format('generation')}").fetchone()[0])
                yield _SQLiteTx(db, generation)
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise

    def erased(self) -> bool:
        """Empty the write-ahead log so no earlier page image of erased rows survives."""
        with self._mutex:
            return truncate_wal(self.db, "the gallery")

    def rows(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]:
        with self._mutex:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

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
        return "; ".join(str(r[0]) for r in self.rows("PRAGMA integrity_check"))

    def close(self) -> None:
        with self._mutex:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()


class SQLiteStore(SQLStore):
    """A :class:`~faceapp.gallery.store.Store` in a folder (see :class:`SQLiteDialect` for the arguments;
    ``copying``: opened by a copy into it, see :meth:`~faceapp.gallery.sql_store.SQLStore.finish_opening`)."""

    def __init__(self, root: Path, *, lock_timeout: float = 10.0, keys: KeyStore | None = None,
                 progress: Callable[[int, int], None] | None = None, copying: bool = False) -> None:
        self.sqlite = SQLiteDialect(root, lock_timeout=lock_timeout)
        super().__init__(self.sqlite)
        self.finish_opening(keys, progress, copying=copying)

    @property
    def _db(self) -> sqlite3.Connection:
        """The open connection (for maintenance and tests)."""
        return self.sqlite.db
