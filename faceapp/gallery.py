"""The gallery: enrolled people, their templates, and a nearest-neighbour index.

Storage, in one folder:

* ``gallery.sqlite3``: the source of truth (people, templates as float32 blobs,
  optional aligned face crops), in WAL mode so readers never see a half-written state
  and a killed writer loses nothing already committed;
* ``index.hnsw`` + ``index.json``: an hnswlib index (inner product on unit vectors)
  and its sidecar (parameters, sha256 of the index file, deleted labels). It is a
  cache: when it is missing, stale or damaged it is rebuilt or brought up to date from
  SQLite;
* ``write.lock``: a file lock that serialises writers across processes (the GUI and
  the CLI may share a gallery).

The gallery speaks similarity (cosine, higher = more alike); hnswlib's distance is
converted in :func:`_similarity` and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DuplicatePersonError, GalleryError, GalleryLockedError, UnknownPersonError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_NAME = "gallery.sqlite3"
INDEX_NAME = "index.hnsw"
SIDECAR_NAME = "index.json"
LOCK_NAME = "write.lock"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 64  # for up to EF_LARGE_FROM templates; larger galleries use EF_SEARCH_LARGE
HNSW_EF_SEARCH_LARGE = 128
EF_LARGE_FROM = 200_000


def ef_for(templates: int, k: int = 1) -> int:
    """Search breadth for a gallery of this size: recall@1 >= 0.99 up to 1M (README)."""
    return max(k, HNSW_EF_SEARCH_LARGE if templates >= EF_LARGE_FROM else HNSW_EF_SEARCH)
INITIAL_CAPACITY = 1024
MAX_NAME_LENGTH = 200

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
    thumbnail BLOB
);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
"""


@dataclass(frozen=True)
class Person:
    """One enrolled person.

    Attributes:
        id: stable database id.
        name: display name (unique, case-insensitively).
        templates: number of stored templates.
        created_at: Unix time of enrolment.
    """

    id: int
    name: str
    templates: int
    created_at: float


@dataclass(frozen=True)
class TemplateHit:
    """One gallery template close to a probe."""

    template_id: int
    person_id: int
    name: str
    similarity: float


def _similarity(distances: np.ndarray) -> np.ndarray:
    """hnswlib's inner-product distance (1 - dot) -> cosine similarity of unit vectors."""
    return 1.0 - distances


def normalise_name(name: str) -> str:
    """Trim and NFC-normalise a person's name; reject empty or control characters.

    Raises:
        GalleryError: the name is empty, too long, or has control characters.
    """
    clean = unicodedata.normalize("NFC", str(name)).strip()
    if not clean:
        raise GalleryError("a person's name must not be empty")
    if len(clean) > MAX_NAME_LENGTH:
        raise GalleryError(f"a person's name must be at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in clean):
        raise GalleryError("a person's name must not contain control characters (tabs, newlines)")
    return clean


class Gallery:
    """A persistent face gallery in a folder.

    Args:
        root: the gallery folder; created when missing.
        lock_timeout: seconds a writer waits for another process's write to finish.

    Raises:
        GalleryError: the folder cannot be created or written, or the database is damaged.
    """

    def __init__(self, root: Path, *, lock_timeout: float = 10.0) -> None:
        import filelock

        self.root = Path(root).expanduser()
        self.lock_timeout = lock_timeout
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(
                f"cannot create gallery folder {self.root} ({exc.strerror}); choose another with --gallery"
            ) from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise GalleryError(f"gallery folder {self.root} is not writable; fix its permissions or use --gallery")
        self.db_path = self.root / DB_NAME
        self.index_path = self.root / INDEX_NAME
        self.sidecar_path = self.root / SIDECAR_NAME
        self._file_lock = filelock.FileLock(str(self.root / LOCK_NAME))
        self._mutex = threading.RLock()
        self._index: Any = None
        self._index_generation = -1
        self._deleted: set[int] = set()
        self._model_sha: str | None = None  # as of the last index sync
        self._db = self._connect()

    # ------------------------------------------------------------------ database

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(str(self.db_path), timeout=self.lock_timeout, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA foreign_keys = ON")
            db.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                log.warning("gallery database is in %s mode, not WAL", mode)
            db.execute("PRAGMA synchronous = NORMAL")
            has_meta = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            if has_meta:
                version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if version is None or int(version[0]) > SCHEMA_VERSION:
                    raise GalleryError(
                        f"gallery {self.root} was written by a newer faceapp (schema {version and version[0]}); "
                        "upgrade faceapp"
                    )
            else:
                with self._write():
                    db.executescript(
                        "BEGIN IMMEDIATE;" + _SCHEMA
                        + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                        + "INSERT OR IGNORE INTO meta VALUES ('generation', '0');COMMIT;"
                    )
            return db
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from exc

    def _db_error(self, exc: sqlite3.Error) -> GalleryError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return GalleryLockedError(
                f"gallery {self.root} is busy in another faceapp process; try again when it finishes"
            )
        if "readonly" in text or "read-only" in text:
            return GalleryError(f"gallery {self.db_path} is read-only; fix its permissions or use --gallery")
        return GalleryError(
            f"gallery database {self.db_path} is damaged ({text}); restore it from a backup or move the "
            "folder aside and re-enrol"
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """Hold the cross-process write lock (and this process's mutex)."""
        import filelock

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
                raise self._db_error(exc) from exc
            try:
                yield db
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._db_error(exc) from exc
                raise
            self._sync_index(save=True)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._db_error(exc) from exc

    # ------------------------------------------------------------------ model binding

    def _model_mismatch(self, stored: str, model_id: str) -> GalleryError:
        return GalleryError(
            f"gallery {self.root} holds templates made by another embedder (sha256 {stored[:12]}...), "
            f"not this one ({model_id[:12]}...); use the same --model or a new --gallery"
        )

    def _check_model(self, db: sqlite3.Connection, model_id: str, dim: int) -> None:
        """Inside a write transaction: refuse templates of another embedder or size."""
        if db.execute("SELECT NOT EXISTS (SELECT 1 FROM templates)").fetchone()[0]:
            return
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('model_sha256', 'dim')").fetchall())
        stored = meta.get("model_sha256")
        if stored is not None and stored != model_id:
            raise self._model_mismatch(stored, model_id)
        if meta.get("dim") is not None and int(meta["dim"]) != dim:
            raise GalleryError(f"gallery {self.root} holds {meta['dim']}-d templates, the model gives {dim}-d")

    # ------------------------------------------------------------------ people

    def list_persons(self, search: str | None = None) -> list[Person]:
        """People in the gallery, by name; ``search`` filters by a case-insensitive substring."""
        sql = (
            "SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p "
            "LEFT JOIN templates t ON t.person_id = p.id "
        )
        params: tuple[Any, ...] = ()
        if search:
            sql += "WHERE p.name LIKE ? ESCAPE '\\' "
            params = ("%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",)
        sql += "GROUP BY p.id ORDER BY p.name COLLATE NOCASE"
        return [Person(int(i), n, int(c), float(t)) for i, n, c, t in self._query(sql, params)]

    def get_person(self, name: str) -> Person:
        """Raises :class:`UnknownPersonError` when ``name`` is not enrolled."""
        rows = self._query(
            "SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p LEFT JOIN templates t "
            "ON t.person_id = p.id WHERE p.name = ? COLLATE NOCASE GROUP BY p.id",
            (normalise_name(name),),
        )
        if not rows:
            raise UnknownPersonError(f"no person named {name!r} in the gallery; see `faceapp-cli list`")
        i, n, c, t = rows[0]
        return Person(int(i), n, int(c), float(t))

    def has_person(self, name: str) -> bool:
        try:
            self.get_person(name)
        except UnknownPersonError:
            return False
        return True

    def count_templates(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM templates")[0][0])

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM persons")[0][0])

    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      thumbnails: Sequence[bytes | None] | None = None,
                      sources: Sequence[str | None] | None = None,
                      qualities: Sequence[dict[str, float] | None] | None = None,
                      create: bool = True, must_be_new: bool = False) -> Person:
        """Add templates to a person, creating the person when ``create``.

        All rows are written in one transaction: either all are stored or none.

        Args:
            name: the person's name.
            embeddings: ``(N, D)`` float32 unit-length embeddings.
            model_id: sha256 of the embedder that made them.
            thumbnails: per template, encoded aligned face crop (JPEG) or ``None``.
            sources: per template, where it came from (file name, "camera").
            qualities: per template, quality measures.
            create: create the person when missing.
            must_be_new: refuse when the person exists.

        Raises:
            DuplicatePersonError: ``must_be_new`` and the name exists.
            UnknownPersonError: not ``create`` and the name is missing.
        """
        clean = normalise_name(name)
        emb = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        if emb.ndim != 2 or len(emb) == 0:
            raise GalleryError("no templates to add")
        if not np.all(np.isfinite(emb)):
            raise GalleryError("refusing templates with NaN or infinite values")
        n = len(emb)
        thumbs = list(thumbnails) if thumbnails is not None else [None] * n
        srcs = list(sources) if sources is not None else [None] * n
        quals = list(qualities) if qualities is not None else [None] * n
        if not len(thumbs) == len(srcs) == len(quals) == n:
            raise ValueError("thumbnails, sources and qualities must match the embeddings")
        now = time.time()
        with self._transaction() as db:
            self._check_model(db, model_id, emb.shape[1])
            row = db.execute("SELECT id, created_at FROM persons WHERE name = ? COLLATE NOCASE", (clean,)).fetchone()
            if row is not None and must_be_new:
                raise DuplicatePersonError(
                    f"a person named {clean!r} already exists; use --add to add these photos to them "
                    "or choose another name"
                )
            if row is None:
                if not create:
                    raise UnknownPersonError(f"no person named {clean!r} in the gallery; see `faceapp-cli list`")
                pid = int(db.execute("INSERT INTO persons (name, created_at) VALUES (?, ?)", (clean, now)).lastrowid or 0)
            else:
                pid = int(row[0])
            db.executemany(
                "INSERT INTO templates (person_id, embedding, created_at, source, quality, thumbnail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (pid, emb[i].tobytes(), now, srcs[i], json.dumps(quals[i]) if quals[i] else None, thumbs[i])
                    for i in range(n)
                ],
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('model_sha256', ?)", (model_id,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(emb.shape[1]),))
        return self.get_person(clean)

    def rename(self, old: str, new: str) -> Person:
        """Rename a person. Raises when ``old`` is unknown or ``new`` is taken by someone else."""
        target = normalise_name(new)
        with self._transaction() as db:
            pid = self._person_id(db, old)
            other = db.execute("SELECT id FROM persons WHERE name = ? COLLATE NOCASE", (target,)).fetchone()
            if other is not None and int(other[0]) != pid:
                raise DuplicatePersonError(f"a person named {target!r} already exists; choose another name")
            db.execute("UPDATE persons SET name = ? WHERE id = ?", (target, pid))
        return self.get_person(target)

    def remove(self, name: str) -> int:
        """Remove a person with every template, thumbnail and index entry; returns templates removed."""
        with self._transaction() as db:
            pid = self._person_id(db, name)
            n = int(db.execute("SELECT COUNT(*) FROM templates WHERE person_id = ?", (pid,)).fetchone()[0])
            db.execute("DELETE FROM templates WHERE person_id = ?", (pid,))
            db.execute("DELETE FROM persons WHERE id = ?", (pid,))
        return n

    def merge(self, source: str, target: str) -> Person:
        """Move every template of ``source`` to ``target`` and remove ``source``."""
        with self._transaction() as db:
            src = self._person_id(db, source)
            dst = self._person_id(db, target)
            if src == dst:
                raise GalleryError("cannot merge a person with themselves")
            db.execute("UPDATE templates SET person_id = ? WHERE person_id = ?", (dst, src))
            db.execute("DELETE FROM persons WHERE id = ?", (src,))
        return self.get_person(target)

    @staticmethod
    def _person_id(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id FROM persons WHERE name = ? COLLATE NOCASE", (normalise_name(name),)).fetchone()
        if row is None:
            raise UnknownPersonError(f"no person named {name!r} in the gallery; see `faceapp-cli list`")
        return int(row[0])

    def templates(self, name: str) -> list[tuple[int, np.ndarray, bytes | None, float]]:
        """``(template_id, embedding, thumbnail, created_at)`` for each of a person's templates."""
        pid = self.get_person(name).id
        rows = self._query(
            "SELECT id, embedding, thumbnail, created_at FROM templates WHERE person_id = ? ORDER BY id", (pid,)
        )
        return [(int(i), np.frombuffer(e, np.float32).copy(), t, float(c)) for i, e, t, c in rows]

    def all_thumbnails(self) -> Iterator[tuple[str, int, bytes]]:
        """``(name, template_id, encoded crop)`` for every stored face crop."""
        rows = self._query(
            "SELECT p.name, t.id, t.thumbnail FROM templates t JOIN persons p ON p.id = t.person_id "
            "WHERE t.thumbnail IS NOT NULL ORDER BY p.name, t.id"
        )
        for name, tid, thumb in rows:
            yield name, int(tid), thumb

    # ------------------------------------------------------------------ index

    def _new_index(self, dim: int, capacity: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=max(capacity, INITIAL_CAPACITY), ef_construction=HNSW_EF_CONSTRUCTION,
                         M=HNSW_M, allow_replace_deleted=True)
        return index

    def _load_index_file(self, dim: int) -> Any | None:
        """The saved index when its sidecar and hash check out, else ``None``."""
        import hnswlib

        from .models import sha256_file

        if not (self.index_path.is_file() and self.sidecar_path.is_file()):
            return None
        try:
            side = json.loads(self.sidecar_path.read_text(encoding="utf-8"))
            if side.get("dim") != dim or side.get("space") != "ip":
                log.info("gallery index parameters changed; rebuilding")
                return None
            if side.get("size") != self.index_path.stat().st_size or side.get("sha256") != sha256_file(self.index_path):
                log.warning("gallery index %s is damaged or out of date; rebuilding it from the database",
                            self.index_path)
                return None
            index = hnswlib.Index(space="ip", dim=dim)
            index.load_index(str(self.index_path), max_elements=int(side["max_elements"]), allow_replace_deleted=True)
            self._deleted = {int(x) for x in side.get("deleted", [])}
            return index
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("gallery index could not be loaded (%s); rebuilding it from the database", exc)
            return None

    def _save_index(self) -> None:
        from .models import sha256_file

        index = self._index
        tmp = self.index_path.with_name(INDEX_NAME + ".tmp")
        index.save_index(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)
        side = {
            "format": 1,
            "space": "ip",
            "dim": int(index.dim or 0),
            "M": HNSW_M,
            "ef_construction": HNSW_EF_CONSTRUCTION,
            "max_elements": int(index.get_max_elements()),
            "generation": self._index_generation,
            "size": self.index_path.stat().st_size,
            "sha256": sha256_file(self.index_path),
            "deleted": sorted(self._deleted),
        }
        stmp = self.sidecar_path.with_name(SIDECAR_NAME + ".tmp")
        stmp.write_text(json.dumps(side), encoding="utf-8")
        os.replace(stmp, self.sidecar_path)

    def _sync_index(self, save: bool) -> bool:
        """Bring the in-memory index in line with the database; returns whether it changed.

        Loads the saved index on first use (when intact), then adds the templates it
        lacks and marks deleted the ones the database no longer has.
        """
        with self._mutex:
            try:
                self._db.execute("BEGIN")
                try:
                    gen = int(self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
                    if self._index is not None and gen == self._index_generation:
                        return False
                    dim_row = self._db.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
                    sha_row = self._db.execute("SELECT value FROM meta WHERE key='model_sha256'").fetchone()
                    self._model_sha = sha_row[0] if sha_row else None
                    ids = np.array([r[0] for r in self._db.execute("SELECT id FROM templates")], dtype=np.int64)
                    dim = int(dim_row[0]) if dim_row else None
                    if dim is None:
                        self._index, self._index_generation, self._deleted = None, gen, set()
                        return False
                    fresh = False
                    if self._index is None or self._index.dim != dim:
                        self._index = self._load_index_file(dim)
                        if self._index is None:
                            self._index, self._deleted, fresh = self._new_index(dim, len(ids) + 1), set(), True
                    have = np.array(self._index.get_ids_list(), dtype=np.int64)
                    if self._deleted:
                        have = np.setdiff1d(have, np.fromiter(self._deleted, np.int64))
                    missing = np.setdiff1d(ids, have)
                    gone = np.setdiff1d(have, ids)
                    vectors = self._fetch_embeddings(missing, dim) if len(missing) else None
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._db_error(exc) from exc
            index = self._index
            for label in gone:
                with contextlib.suppress(RuntimeError):
                    index.mark_deleted(int(label))
                self._deleted.add(int(label))
            if vectors is not None:
                live = index.get_current_count() - len(self._deleted)
                need = live + len(missing)
                if need > index.get_max_elements():
                    index.resize_index(max(need, 2 * index.get_max_elements()))
                index.add_items(vectors, missing.astype(np.uint64), replace_deleted=True)
                if self._deleted:  # replace_deleted may have reused some deleted labels' slots
                    self._deleted &= set(int(x) for x in index.get_ids_list())
            self._index_generation = gen
            changed = fresh or len(missing) > 0 or len(gone) > 0
            if changed and save:
                try:
                    self._save_index()
                except OSError as exc:
                    log.warning("could not save the gallery index (%s); it will be rebuilt next time", exc)
            elif changed:
                self._save_if_unlocked()
            return changed

    def _save_if_unlocked(self) -> None:
        """Save a rebuilt index when no other process is writing; skip otherwise."""
        import filelock

        try:
            self._file_lock.acquire(timeout=0)
        except (filelock.Timeout, OSError):
            return
        try:
            self._save_index()
        except OSError as exc:
            log.warning("could not save the gallery index (%s)", exc)
        finally:
            self._file_lock.release()

    def _fetch_embeddings(self, ids: np.ndarray, dim: int) -> np.ndarray:
        out = np.empty((len(ids), dim), np.float32)
        pos = {int(t): i for i, t in enumerate(ids)}
        chunk = 900
        for start in range(0, len(ids), chunk):
            part = [int(x) for x in ids[start : start + chunk]]
            marks = ",".join("?" * len(part))
            for tid, blob in self._db.execute(f"SELECT id, embedding FROM templates WHERE id IN ({marks})", part):
                out[pos[int(tid)]] = np.frombuffer(blob, np.float32)
        return out

    def search(self, embeddings: np.ndarray, k: int, *, model_id: str) -> list[list[TemplateHit]]:
        """Nearest templates for each probe.

        Args:
            embeddings: ``(N, D)`` float32 unit-length probes.
            k: templates to return per probe (fewer when the gallery is smaller).
            model_id: sha256 of the embedder that made the probes.

        Returns:
            Per probe, hits best first.
        """
        probes = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        if probes.ndim == 1:
            probes = probes[None]
        if len(probes) == 0:
            return []
        self._sync_index(save=False)
        with self._mutex:
            index = self._index
            if index is None:
                return [[] for _ in probes]
            live = index.get_current_count() - len(self._deleted)
            # Checked against the values read at the last sync: no per-frame table scan.
            if live > 0 and self._model_sha is not None and self._model_sha != model_id:
                raise self._model_mismatch(self._model_sha, model_id)
            if index.dim != probes.shape[1]:
                raise GalleryError(f"gallery {self.root} holds {index.dim}-d templates, the model gives {probes.shape[1]}-d")
            kk = min(int(k), live)
            if kk <= 0:
                return [[] for _ in probes]
            index.set_ef(ef_for(live, kk))
            labels, dists = index.knn_query(probes, k=kk)
        sims = _similarity(dists)
        owners = self._owners(np.unique(labels))
        out: list[list[TemplateHit]] = []
        for row_l, row_s in zip(labels, sims):
            hits = []
            for tid, sim in zip(row_l, row_s):
                owner = owners.get(int(tid))
                if owner is not None:  # removed by another process since the sync
                    hits.append(TemplateHit(int(tid), owner[0], owner[1], float(sim)))
            out.append(hits)
        return out

    def _owners(self, template_ids: np.ndarray) -> dict[int, tuple[int, str]]:
        ids = [int(x) for x in template_ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            f"SELECT t.id, p.id, p.name FROM templates t JOIN persons p ON p.id = t.person_id WHERE t.id IN ({marks})",
            ids,
        )
        return {int(t): (int(p), n) for t, p, n in rows}

    def index_stats(self) -> dict[str, Any]:
        self._sync_index(save=False)
        index = self._index
        return {
            "templates": self.count_templates(),
            "index_elements": 0 if index is None else index.get_current_count() - len(self._deleted),
            "index_capacity": 0 if index is None else index.get_max_elements(),
            "index_file_bytes": self.index_path.stat().st_size if self.index_path.exists() else 0,
            "database_bytes": self.db_path.stat().st_size if self.db_path.exists() else 0,
        }

    def check(self) -> str:
        """SQLite's integrity check; ``"ok"`` when the database is sound."""
        rows = self._query("PRAGMA integrity_check")
        return "; ".join(str(r[0]) for r in rows)

    def close(self) -> None:
        with self._mutex:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._index = None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
