"""A gallery store in PostgreSQL, shared by several devices.

The database holds what :class:`~faceapp.gallery.sqlite_store.SQLiteStore` holds in a folder
(people, templates with their model id and aligned face crop, negative samples, a random
gallery id and a generation bumped by every write) plus a *change log*: one row per
template added or removed, with the generation that did it, so a device brings its local
index up to date by reading only what changed. Every write is one transaction that takes
the gallery row's lock first (so writers from any number of devices are serialised and
generations never collide), bumps the generation, logs its changes and sends a
``NOTIFY`` that running devices receive at once.

Search never runs on the server: each device keeps its own index (see
:mod:`faceapp.gallery.gallery`). Rows are really deleted (no soft delete) and the tables are
left to autovacuum (an explicit ``VACUUM`` of a large gallery after every removal
would take seconds, and would not overwrite the freed bytes either: the server's disk
should be encrypted, as for any database of personal data).

Passwords come only from libpq's own places (``PGPASSWORD``, the password file, a service
file); an address that contains one is refused, and every message shows the address
without it (:func:`redact`). When the server cannot be reached, writes are refused with
one line (:class:`~faceapp.errors.GalleryUnavailableError`) while reads of the gallery's
state and of the names of indexed templates answer from what this process saw last, so a
running device keeps matching; it reconnects with backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceapp.errors import (
    DuplicatePersonError,
    GalleryError,
    GalleryMismatchError,
    GalleryUnavailableError,
    SettingsError,
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

CHANNEL = "faceapp_gallery"
CONNECT_TIMEOUT_S = 5
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)

# Versioned migrations: (version, statements). Applied in order, each in its own transaction,
# under an advisory lock so two devices opening a new database at once do not race.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TABLE gallery (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    gallery_id TEXT NOT NULL,
    generation BIGINT NOT NULL,
    model_id TEXT,
    dim INTEGER,
    log_start BIGINT NOT NULL
);
CREATE TABLE persons (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX persons_name ON persons (lower(name));
CREATE TABLE templates (
    id BIGINT PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    embedding BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    source TEXT,
    quality TEXT,
    crop BYTEA,
    model_id TEXT,
    derived_from BIGINT
);
CREATE INDEX templates_person ON templates (person_id);
CREATE INDEX templates_model ON templates (model_id);
CREATE TABLE negatives (
    id BIGINT PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    embedding BYTEA NOT NULL,
    model_id TEXT NOT NULL,
    crop BYTEA,
    created_at DOUBLE PRECISION NOT NULL,
    derived_from BIGINT
);
CREATE INDEX negatives_person ON negatives (person_id);
CREATE TABLE changes (
    seq BIGSERIAL PRIMARY KEY,
    generation BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('add', 'remove', 'owner')),
    template_id BIGINT NOT NULL,
    model_id TEXT
);
CREATE INDEX changes_generation ON changes (generation);
"""),
    (2, """
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    person_id BIGINT REFERENCES persons(id) ON DELETE CASCADE,
    decision TEXT NOT NULL,
    similarity REAL,
    track_id BIGINT,
    box TEXT,
    source TEXT NOT NULL,
    device TEXT NOT NULL
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_person ON events (person_id);
"""),
    (3, """
ALTER TABLE events ADD COLUMN snapshot BYTEA;
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
_LOCK_KEY = 0x66616365  # advisory lock id for migrations ("face")


def redact(dsn: str) -> str:
    """The address as it may be shown: ``postgresql://user@host:port/dbname``, never a password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - an unparsable address is shown as nothing of it
        return "postgresql://(unreadable address)"
    if "service" in parts and "host" not in parts:
        return f"postgresql service {parts['service']}"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


def _check_no_password(dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:  # noqa: BLE001 - psycopg raises ProgrammingError with the text
        raise SettingsError(f"the gallery address {redact(dsn)} is not a valid PostgreSQL address; "
                            "write postgresql://user@host:port/dbname or host=... dbname=...") from exc
    if parts.get("password"):
        raise SettingsError(
            f"the gallery address {redact(dsn)} contains a password; remove it and put it in ~/.pgpass "
            "(or PGPASSFILE, PGPASSWORD, a service file) instead"
        )


@dataclass(frozen=True)
class EventRecord:
    """One kept event of a device (see :class:`faceapp.watch.Event`).

    Attributes:
        time: Unix time.
        person: the matched person's name, or ``None``.
        decision: ``"match"``, ``"ambiguous"``, ``"uncertain"`` or ``"unknown"``.
        similarity: the best person's similarity, or ``None``.
        track_id: the face's track on that device.
        box: pixel ``(x0, y0, x1, y1)``.
        source: the device's camera or stream (without credentials).
        device: the device's name (its host name unless set).
        snapshot: the face's aligned crop as JPEG, kept only when the device was asked to
            (``watch --record --snapshots``); read back only by ``events(snapshots=True)``.
        has_snapshot: the kept event has a snapshot (set when read back).
    """

    time: float
    person: str | None
    decision: str
    similarity: float | None
    track_id: int | None
    box: tuple[float, ...] | None
    source: str
    device: str
    snapshot: bytes | None = field(default=None, repr=False)
    has_snapshot: bool = False


class PostgresStore:
    """A :class:`~faceapp.gallery.store.Store` in a PostgreSQL database.

    Args:
        dsn: a libpq URI (``postgresql://user@host:port/dbname``) or key=value string,
            without a password.
        listen: keep a second connection that ``LISTEN``\\s for other devices' writes, so
            :meth:`state` answers without a round trip until something changes and
            :meth:`wait_for_change` wakes within milliseconds of a commit.

    Raises:
        SettingsError: the address is malformed or contains a password.
        GalleryUnavailableError: the server cannot be reached.
        GalleryError: the database was written by a newer faceapp, or cannot be used.
    """

    read_only = False

    def __init__(self, dsn: str, *, listen: bool = True) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise GalleryError("a PostgreSQL gallery needs psycopg: pip install 'faceapp[postgres]'") from exc
        _check_no_password(dsn)
        self._dsn = dsn
        self.location = redact(dsn)
        self._mutex = threading.RLock()
        self._con: Any = None
        self._failures = 0
        self._next_try = 0.0
        self._last_state: StoreState | None = None
        self._owners: dict[int, tuple[int, str]] = {}
        self._offline_logged = False
        self._changed = threading.Event()
        self._fresh = False  # the cached state is current (the listener is connected and quiet)
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._listening = False
        with self._mutex:
            self._connection()
            self._last_state = self._read_state()
        if listen:
            self._listener = threading.Thread(target=self._listen_loop, name="faceapp-pg-listen", daemon=True)
            self._listener.start()

    # ------------------------------------------------------------------ connection

    def _unavailable(self, exc: BaseException | None) -> GalleryUnavailableError:
        why = _reason(exc, self._dsn)
        return GalleryUnavailableError(
            f"gallery server {self.location} is not reachable ({why}); changes are refused until it is back, "
            "matching goes on with the last synced gallery"
        )

    def _connect(self, autocommit: bool = True) -> Any:
        import psycopg

        params: dict[str, Any] = {"autocommit": autocommit, "application_name": "faceapp"}
        if "connect_timeout" not in self._dsn:
            params["connect_timeout"] = CONNECT_TIMEOUT_S
        return psycopg.connect(self._dsn, **params)

    def _connection(self) -> Any:
        """The open connection, connecting when needed (with backoff after failures)."""
        import psycopg

        if self._con is not None and not self._con.closed:
            return self._con
        now = time.monotonic()
        if now < self._next_try:
            raise self._unavailable(None)
        try:
            con = self._connect()
        except psycopg.OperationalError as exc:
            self._failures += 1
            self._next_try = now + BACKOFF_S[min(self._failures - 1, len(BACKOFF_S) - 1)]
            raise self._unavailable(exc) from None
        self._failures, self._next_try = 0, 0.0
        if self._offline_logged:
            log.warning("gallery server %s is reachable again", self.location)
            self._offline_logged = False
        self._con = con
        self._migrate(con)
        return con

    def _drop(self) -> None:
        con, self._con = self._con, None
        self._fresh = False
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor on the shared connection; connection failures become one clear error."""
        import psycopg

        with self._mutex:
            con = self._connection()
            try:
                with con.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                self._drop()
                raise self._unavailable(exc) from None
            except psycopg.errors.UniqueViolation as exc:
                raise DuplicatePersonError("that name is already taken in the gallery; choose another name") from exc
            except psycopg.Error as exc:
                if con.closed or con.broken:
                    self._drop()
                    raise self._unavailable(exc) from None
                raise GalleryError(f"gallery database {self.location} refused the request ({_reason(exc, self._dsn)})") \
                    from None

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[tuple[Any, int]]:
        """One write transaction: locks the gallery row, bumps the generation, notifies on commit.

        Yields ``(cursor, new generation)``. Nothing is written when it raises.
        """
        with self._cursor() as cur, cur.connection.transaction():
            cur.execute("UPDATE gallery SET generation = generation + 1 RETURNING generation")
            gen = int(cur.fetchone()[0])
            yield cur, gen
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(gen)))
        self._fresh = False

    def _migrate(self, con: Any) -> None:
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
            have = int(row[0] or 0)
            if have > SCHEMA_VERSION:
                raise GalleryError(f"gallery database {self.location} was written by a newer faceapp "
                                   f"(schema {have}); upgrade faceapp")
            for version, sql in MIGRATIONS:
                if version <= have:
                    continue
                for stmt in filter(None, (s.strip() for s in sql.split(";"))):
                    con.execute(stmt)  # type: ignore[arg-type]  # our own constant SQL
                if version == 1:
                    con.execute("INSERT INTO gallery (gallery_id, generation, log_start) VALUES (%s, 0, 0)",
                                (secrets.token_hex(16),))
                con.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("gallery database %s: applied schema migration %d", self.location, version)

    # ------------------------------------------------------------------ change notifications

    def _listen_loop(self) -> None:
        """Background thread: LISTEN for other devices' commits; reconnect with backoff."""
        import psycopg

        failures = 0
        while not self._stop.is_set():
            try:
                with self._connect() as con:
                    con.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    self._listening = True
                    self._changed.set()  # anything may have happened while we were not listening
                    while not self._stop.is_set():
                        for _ in con.notifies(timeout=0.5, stop_after=1):
                            self._fresh = False
                            self._changed.set()
            except psycopg.Error as exc:
                self._listening = False
                self._fresh = False
                failures += 1
                delay = BACKOFF_S[min(failures - 1, len(BACKOFF_S) - 1)]
                log.debug("gallery change listener lost (%s); retrying in %.1f s", _reason(exc, self._dsn), delay)
                self._stop.wait(delay)
        self._listening = False

    def wait_for_change(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for another write to the gallery.

        Returns:
            ``True`` when something may have changed (then call :meth:`state`).
        """
        fired = self._changed.wait(timeout)
        self._changed.clear()
        return fired

    @property
    def online(self) -> bool:
        """Whether the last request reached the server."""
        return self._con is not None and not self._con.closed

    # ------------------------------------------------------------------ state

    def _read_state(self) -> StoreState:
        with self._cursor() as cur:
            cur.execute("SELECT gallery_id, generation, model_id, dim FROM gallery")
            g, gen, m, d = cur.fetchone()
        return StoreState(gallery_id=g, generation=int(gen), model_id=m, dim=int(d) if d is not None else None)

    def state(self) -> StoreState:
        """The gallery's state; the last one seen when the server cannot be reached.

        While the change listener is connected and no change was announced, this answers
        without asking the server.
        """
        if self._last_state is not None and (self._fresh and self._listening or self._reads_wait()):
            return self._last_state
        try:
            self._fresh = self._listening  # set before reading: a notification during the read clears it
            state = self._read_state()
        except GalleryUnavailableError as exc:
            self._fresh = False
            if self._last_state is None:
                raise
            if not self._offline_logged:
                log.warning("%s", exc)
                self._offline_logged = True
            return self._last_state
        self._last_state = state
        return state

    def _reads_wait(self) -> bool:
        """While the server is away, matching does not wait on connection attempts: the
        listener thread retries with backoff, and reads go back to the server once it is in."""
        return self._listener is not None and not self._listening and (self._con is None or self._con.closed)

    def model_counts(self) -> dict[str, int]:
        rows = self._query("SELECT COALESCE(model_id, '?'), COUNT(*) FROM templates GROUP BY model_id")
        return {m: int(c) for m, c in rows}

    # ------------------------------------------------------------------ people

    def list_persons(self, search: str | None = None) -> list[Person]:
        sql = ("SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p "
               "LEFT JOIN templates t ON t.person_id = p.id ")
        params: tuple[Any, ...] = ()
        if search:
            sql += "WHERE strpos(lower(p.name), lower(%s)) > 0 "
            params = (search,)
        sql += "GROUP BY p.id ORDER BY lower(p.name)"
        return [Person(int(i), n, int(c), float(t)) for i, n, c, t in self._query(sql, params)]

    def get_person(self, name: str) -> Person:
        rows = self._query(
            "SELECT p.id, p.name, COUNT(t.id), p.created_at FROM persons p LEFT JOIN templates t "
            "ON t.person_id = p.id WHERE lower(p.name) = lower(%s) GROUP BY p.id", (normalise_name(name),))
        if not rows:
            raise unknown_person(name)
        i, n, c, t = rows[0]
        return Person(int(i), n, int(c), float(t))

    def count_persons(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM persons")[0][0])

    def count_templates(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM templates")[0][0])

    @staticmethod
    def _person_id(cur: Any, name: str) -> int:
        cur.execute("SELECT id FROM persons WHERE lower(name) = lower(%s)", (normalise_name(name),))
        row = cur.fetchone()
        if row is None:
            raise unknown_person(name)
        return int(row[0])

    def _check_model(self, cur: Any, model_id: str, dim: int) -> None:
        cur.execute("SELECT model_id, dim, NOT EXISTS (SELECT 1 FROM templates) FROM gallery")
        stored, stored_dim, empty = cur.fetchone()
        if empty:
            return
        if stored is not None and stored != model_id:
            raise GalleryMismatchError(
                f"gallery {self.location} holds templates made by another embedder (sha256 {stored[:12]}...); "
                "run `faceapp-cli reembed` to rebuild them with this model, or use the model they were made with"
            )
        if stored_dim is not None and int(stored_dim) != dim:
            raise GalleryMismatchError(f"gallery {self.location} holds {stored_dim}-d templates, the model gives {dim}-d")

    @staticmethod
    def _log(cur: Any, gen: int, kind: str, rows: Sequence[tuple[int, str | None]]) -> None:
        if rows:
            cur.executemany("INSERT INTO changes (generation, kind, template_id, model_id) VALUES (%s, %s, %s, %s)",
                            [(gen, kind, int(t), m) for t, m in rows])

    @staticmethod
    def _log_owner(cur: Any, gen: int, pid: int) -> None:
        """Log that the templates of person ``pid`` now answer to another name or person."""
        cur.execute("INSERT INTO changes (generation, kind, template_id, model_id) "
                    "SELECT %s, 'owner', id, model_id FROM templates WHERE person_id = %s", (gen, pid))

    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      crops: Sequence[bytes | None], sources: Sequence[str | None],
                      qualities: Sequence[dict[str, float] | None], create: bool, must_be_new: bool) -> Person:
        clean = normalise_name(name)
        emb = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        now = time.time()
        with self._transaction() as (cur, gen):
            self._check_model(cur, model_id, emb.shape[1])
            cur.execute("SELECT id FROM persons WHERE lower(name) = lower(%s)", (clean,))
            row = cur.fetchone()
            if row is not None and must_be_new:
                raise DuplicatePersonError(
                    f"a person named {clean!r} already exists; use --add to add these photos to them or choose another name"
                )
            if row is None:
                if not create:
                    raise unknown_person(clean)
                pid = new_row_id()
                cur.execute("INSERT INTO persons (id, name, created_at) VALUES (%s, %s, %s)", (pid, clean, now))
            else:
                pid = int(row[0])
            ids = [new_row_id() for _ in range(len(emb))]
            cur.executemany(
                "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(ids[i], pid, emb[i].tobytes(), now, sources[i],
                  json.dumps(qualities[i]) if qualities[i] else None, crops[i], model_id) for i in range(len(emb))],
            )
            self._log(cur, gen, "add", [(t, model_id) for t in ids])
            cur.execute("UPDATE gallery SET model_id = %s, dim = %s", (model_id, int(emb.shape[1])))
        return self.get_person(clean)

    def rename(self, old: str, new: str) -> Person:
        target = normalise_name(new)
        with self._transaction() as (cur, gen):
            pid = self._person_id(cur, old)
            cur.execute("SELECT id FROM persons WHERE lower(name) = lower(%s)", (target,))
            other = cur.fetchone()
            if other is not None and int(other[0]) != pid:
                raise DuplicatePersonError(f"a person named {target!r} already exists; choose another name")
            cur.execute("UPDATE persons SET name = %s WHERE id = %s", (target, pid))
            self._log_owner(cur, gen, pid)
        return self.get_person(target)

    def merge(self, source: str, target: str) -> Person:
        with self._transaction() as (cur, gen):
            src = self._person_id(cur, source)
            dst = self._person_id(cur, target)
            if src == dst:
                raise GalleryError("cannot merge a person with themselves")
            self._log_owner(cur, gen, src)
            cur.execute("UPDATE templates SET person_id = %s WHERE person_id = %s", (dst, src))
            cur.execute("UPDATE negatives SET person_id = %s WHERE person_id = %s", (dst, src))
            cur.execute("DELETE FROM persons WHERE id = %s", (src,))
        return self.get_person(target)

    def _erase(self, cur: Any, gen: int, where: str, params: Sequence[Any]) -> tuple[int, int]:
        """Delete template rows matching ``where`` and log them; returns (templates, crops)."""
        cur.execute(f"DELETE FROM templates WHERE {where} RETURNING id, model_id, crop IS NOT NULL", params)
        rows = cur.fetchall()
        self._log(cur, gen, "remove", [(int(t), m) for t, m, _ in rows])
        with self._mutex:
            for t, _, _ in rows:
                self._owners.pop(int(t), None)
        return len(rows), sum(1 for *_, c in rows if c)

    def remove(self, name: str) -> Erased:
        with self._transaction() as (cur, gen):
            pid = self._person_id(cur, name)
            n, c = self._erase(cur, gen, "person_id = %s", (pid,))
            cur.execute("DELETE FROM negatives WHERE person_id = %s RETURNING crop IS NOT NULL", (pid,))
            negs = cur.fetchall()
            cur.execute("DELETE FROM persons WHERE id = %s", (pid,))  # and, by cascade, their events
        return Erased(templates=n, crops=c + sum(1 for (x,) in negs if x), negatives=len(negs))

    def remove_template(self, template_id: int) -> Erased:
        with self._transaction() as (cur, gen):
            n, c = self._erase(cur, gen, "id = %s", (int(template_id),))
            if n == 0:
                raise UnknownPersonError(f"no sample {template_id} in the gallery; it may have been removed already")
        return Erased(templates=n, crops=c)

    def samples(self, name: str) -> list[Sample]:
        pid = self.get_person(name).id
        rows = self._query("SELECT id, crop, quality, source, created_at, model_id FROM templates WHERE person_id = %s "
                           "ORDER BY created_at, id", (pid,))
        return [Sample(int(i), bytes(c) if c is not None else None, json.loads(q) if q else None, s, float(t), m)
                for i, c, q, s, t, m in rows]

    def crops(self) -> Iterator[tuple[str, int, bytes]]:
        rows = self._query("SELECT p.name, t.id, t.crop FROM templates t JOIN persons p ON p.id = t.person_id "
                           "WHERE t.crop IS NOT NULL ORDER BY p.name, t.id")
        for name, tid, crop in rows:
            yield name, int(tid), bytes(crop)

    # ------------------------------------------------------------------ negatives

    def add_negative(self, name: str, embedding: np.ndarray, *, model_id: str, crop: bytes | None) -> int:
        emb = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).reshape(-1))
        with self._transaction() as (cur, _gen):
            pid = self._person_id(cur, name)
            cur.execute("SELECT model_id FROM gallery")
            stored = cur.fetchone()[0]
            if stored is not None and stored != model_id:
                raise GalleryMismatchError(
                    f"gallery {self.location} holds templates made by another embedder; run `faceapp-cli reembed` first"
                )
            nid = new_row_id()
            cur.execute("INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s)", (nid, pid, emb.tobytes(), model_id, crop, time.time()))
            return nid

    def negatives(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self._query("SELECT person_id, embedding FROM negatives WHERE model_id = %s ORDER BY id", (model_id,))
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        pids = np.array([int(p) for p, _ in rows], np.int64)
        return pids, np.stack([np.frombuffer(e, np.float32) for _, e in rows])

    def negative_samples(self, model_id: str) -> list[tuple[int, np.ndarray, bytes | None]]:
        rows = self._query("SELECT person_id, embedding, crop FROM negatives WHERE model_id = %s ORDER BY id", (model_id,))
        return [(int(p), np.frombuffer(e, np.float32), None if c is None else bytes(c)) for p, e, c in rows]

    # ------------------------------------------------------------------ what an index is built from

    def template_ids(self, model_id: str) -> np.ndarray:
        rows = self._query("SELECT t.id, t.person_id, p.name FROM templates t JOIN persons p ON p.id = t.person_id "
                           "WHERE t.model_id = %s ORDER BY t.id", (model_id,))
        with self._mutex:
            self._owners = {int(t): (int(p), n) for t, p, n in rows}
        return np.array([r[0] for r in rows], dtype=np.int64)

    def changes_since(self, generation: int, model_id: str) -> Changes | None:
        """Templates of ``model_id`` added and removed after ``generation``, read in one snapshot.

        Returns ``None`` when the change log does not reach back that far (the caller then
        compares all ids).
        """
        import psycopg

        with self._cursor() as cur:
            con = cur.connection
            con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                with con.transaction():
                    cur.execute("SELECT gallery_id, generation, model_id, dim, log_start FROM gallery")
                    g, gen, m, d, start = cur.fetchone()
                    if generation < int(start) or generation > int(gen):
                        return None
                    cur.execute("SELECT kind, template_id FROM changes WHERE generation > %s AND model_id = %s "
                                "ORDER BY seq", (int(generation), model_id))
                    log_rows = cur.fetchall()
                    added: dict[int, None] = {}
                    removed: set[int] = set()
                    moved: set[int] = set()
                    for kind, tid in log_rows:
                        tid = int(tid)
                        if kind == "owner":
                            moved.add(tid)
                        elif kind == "add":
                            added[tid] = None
                            removed.discard(tid)
                        elif tid in added:
                            del added[tid]
                        else:
                            removed.add(tid)
                    new = np.fromiter(added, np.int64, len(added))
                    if len(new) or moved:
                        cur.execute("SELECT t.id, t.person_id, p.name FROM templates t JOIN persons p "
                                    "ON p.id = t.person_id WHERE t.id = ANY(%s)", (new.tolist() + sorted(moved),))
                        with self._mutex:
                            self._owners.update({int(t): (int(p), n) for t, p, n in cur.fetchall()})
            finally:
                con.isolation_level = None
        with self._mutex:
            for t in removed:
                self._owners.pop(t, None)
        state = StoreState(gallery_id=g, generation=int(gen), model_id=m, dim=int(d) if d is not None else None)
        self._last_state = state
        return Changes(state=state, added=new, removed=np.array(sorted(removed), np.int64))

    def embeddings(self, ids: np.ndarray, dim: int) -> np.ndarray:
        out = np.empty((len(ids), dim), np.float32)
        pos = {int(t): i for i, t in enumerate(ids)}
        with self._cursor() as cur:
            for start in range(0, len(ids), 50_000):
                part = [int(x) for x in ids[start: start + 50_000]]
                cur.execute("SELECT id, embedding FROM templates WHERE id = ANY(%s)", (part,), binary=True)
                for tid, blob in cur:
                    out[pos[int(tid)]] = np.frombuffer(blob, np.float32)
        return out

    def owners(self, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        """Person id and name of each template.

        Answered from memory while the state is current (the listener heard of no write
        since, and the change log keeps names up to date) or when the server is down; from
        the server otherwise.
        """
        want = [int(x) for x in ids]
        with self._mutex:
            if self._fresh and self._listening and all(t in self._owners for t in want):
                return {t: self._owners[t] for t in want}
        try:
            if self._reads_wait():
                raise self._unavailable(None)
            rows = self._query("SELECT t.id, p.id, p.name FROM templates t JOIN persons p ON p.id = t.person_id "
                               "WHERE t.id = ANY(%s)", (want,))
        except GalleryUnavailableError:
            with self._mutex:
                return {t: self._owners[t] for t in want if t in self._owners}
        out = {int(t): (int(p), n) for t, p, n in rows}
        with self._mutex:
            self._owners.update(out)
            for t in want:
                if t not in out:
                    self._owners.pop(t, None)
        return out

    # ------------------------------------------------------------------ re-embedding

    def reembed_status(self, model_id: str) -> ReembedStatus:
        done = self._query("SELECT COUNT(*) FROM templates WHERE model_id = %s AND derived_from IS NOT NULL", (model_id,))
        pending = self._query(
            "SELECT COUNT(*) FROM templates o WHERE o.model_id IS DISTINCT FROM %s AND o.crop IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM templates n WHERE n.derived_from = o.id AND n.model_id = %s)", (model_id, model_id))
        lost = self._query(
            "SELECT DISTINCT p.name, lower(p.name) FROM templates t JOIN persons p ON p.id = t.person_id "
            "WHERE t.model_id IS DISTINCT FROM %s AND t.crop IS NULL ORDER BY lower(p.name)", (model_id,))
        return ReembedStatus(done=int(done[0][0]), pending=int(pending[0][0]), without_crop=tuple(r[0] for r in lost))

    def reembed_work(self, model_id: str, limit: int) -> list[ReembedWork]:
        rows = self._query(
            "SELECT 'template', o.id, o.crop FROM templates o WHERE o.model_id IS DISTINCT FROM %(m)s "
            "AND o.crop IS NOT NULL AND NOT EXISTS (SELECT 1 FROM templates n WHERE n.derived_from = o.id "
            "AND n.model_id = %(m)s) UNION ALL SELECT 'negative', o.id, o.crop FROM negatives o "
            "WHERE o.model_id IS DISTINCT FROM %(m)s AND o.crop IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM negatives n WHERE n.derived_from = o.id AND n.model_id = %(m)s) ORDER BY 2 LIMIT %(n)s",
            {"m": model_id, "n": int(limit)})
        return [ReembedWork(k, int(i), bytes(c)) for k, i, c in rows]

    def add_reembedded(self, model_id: str, rows: Sequence[tuple[ReembedWork, np.ndarray]]) -> None:
        """Store new-model rows beside the old ones; searches keep using the old model until finished."""
        with self._transaction() as (cur, gen):
            added: list[tuple[int, str | None]] = []
            for work, emb in rows:
                blob = np.ascontiguousarray(emb, dtype=np.float32).tobytes()
                new = new_row_id()
                if work.kind == "template":
                    cur.execute(
                        "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id, "
                        "derived_from) SELECT %s, person_id, %s, created_at, source, quality, crop, %s, id FROM templates "
                        "WHERE id = %s", (new, blob, model_id, work.row_id))
                    added.append((new, model_id))
                else:
                    cur.execute(
                        "INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at, derived_from) "
                        "SELECT %s, person_id, %s, %s, crop, created_at, id FROM negatives WHERE id = %s",
                        (new, blob, model_id, work.row_id))
            self._log(cur, gen, "add", added)

    def finish_reembed(self, model_id: str) -> Erased:
        """Switch the gallery to ``model_id`` and erase every row of other models."""
        with self._transaction() as (cur, gen):
            cur.execute("SELECT length(embedding) / 4 FROM templates WHERE model_id = %s LIMIT 1", (model_id,))
            dim = cur.fetchone()
            n, c = self._erase(cur, gen, "model_id IS DISTINCT FROM %s", (model_id,))
            cur.execute("DELETE FROM negatives WHERE model_id IS DISTINCT FROM %s", (model_id,))
            neg = cur.rowcount
            cur.execute("UPDATE templates SET derived_from = NULL WHERE derived_from IS NOT NULL")
            cur.execute("UPDATE negatives SET derived_from = NULL WHERE derived_from IS NOT NULL")
            cur.execute("UPDATE gallery SET model_id = %s", (model_id,))
            if dim is not None:
                cur.execute("UPDATE gallery SET dim = %s", (int(dim[0]),))
        return Erased(templates=n, crops=c, negatives=int(neg))

    # ------------------------------------------------------------------ event history

    def add_events(self, events: Sequence[EventRecord], retention_days: float) -> None:
        """Keep events (one transaction) and drop those older than ``retention_days``.

        Events are history, not gallery content: they do not bump the generation. A
        person's events (snapshots included) are erased with the person (``ON DELETE
        CASCADE``); old events are deleted with their snapshots.

        Args:
            events: the events to keep (``snapshot`` bytes are stored as given).
            retention_days: events older than this many days are deleted.
        """
        cutoff = time.time() - retention_days * 86400.0
        with self._cursor() as cur, cur.connection.transaction():
            if events:
                cur.executemany(
                    "INSERT INTO events (time, person_id, decision, similarity, track_id, box, source, device, snapshot) "
                    "VALUES (%s, (SELECT id FROM persons WHERE lower(name) = lower(%s)), %s, %s, %s, %s, %s, %s, %s)",
                    [(e.time, e.person, e.decision, e.similarity, e.track_id, json.dumps(e.box) if e.box else None,
                      e.source, e.device, e.snapshot) for e in events])
            cur.execute("DELETE FROM events WHERE time < %s", (cutoff,))

    def events(self, since: float | None = None, person: str | None = None, *,
               snapshots: bool = False) -> list[EventRecord]:
        """Kept events, oldest first, from ``since`` (Unix time) and of ``person`` (a name).

        Args:
            since: only events at or after this Unix time.
            person: only this person's events.
            snapshots: also read the snapshot bytes (otherwise only ``has_snapshot`` is set).
        """
        pick = "e.snapshot" if snapshots else "NULL::bytea"
        sql = ("SELECT e.time, p.name, e.decision, e.similarity, e.track_id, e.box, e.source, e.device, "
               f"{pick}, e.snapshot IS NOT NULL FROM events e LEFT JOIN persons p ON p.id = e.person_id WHERE e.time >= %s")
        params: list[Any] = [since if since is not None else 0.0]
        if person is not None:
            sql += " AND e.person_id = %s"
            params.append(self.get_person(person).id)
        rows = self._query(sql + " ORDER BY e.time, e.id", params)
        return [EventRecord(float(t), n, d, None if s is None else float(s), tr,
                            tuple(json.loads(b)) if b else None, src, dev, None if snap is None else bytes(snap), has)
                for t, n, d, s, tr, b, src, dev, snap, has in rows]

    def last_seen(self) -> dict[str, float]:
        """``{name: Unix time of the person's latest kept match event}`` for people seen at all."""
        rows = self._query("SELECT p.name, max(e.time) FROM events e JOIN persons p ON p.id = e.person_id "
                           "WHERE e.decision = 'match' GROUP BY p.name")
        return {n: float(t) for n, t in rows}

    # ------------------------------------------------------------------ housekeeping

    def describe(self) -> dict[str, Any]:
        rows = self._query("SELECT pg_database_size(current_database()), current_setting('server_version'), "
                           "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
        size, version, ssl = rows[0]
        return {"kind": "postgresql", "path": self.location, "read_only": False, "database_bytes": int(size),
                "server_version": version, "tls": bool(ssl), "permissions": {}, "private": True}

    def check(self) -> str:
        rows = self._query(
            "SELECT (SELECT COUNT(*) FROM templates t LEFT JOIN persons p ON p.id = t.person_id WHERE p.id IS NULL), "
            "(SELECT COUNT(*) FROM templates WHERE length(embedding) %% 4 <> 0)")
        orphans, bad = rows[0]
        problems = [f"{orphans} template(s) without a person"] if orphans else []
        problems += [f"{bad} template(s) with a damaged embedding"] if bad else []
        return "; ".join(problems) or "ok"

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=2.0)
        with self._mutex:
            self._drop()


def _reason(exc: BaseException | None, dsn: str) -> str:
    """The first line of a driver error, with anything that could be a secret removed."""
    if exc is None:
        return "reconnecting shortly"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.replace(dsn, redact(dsn))
    with contextlib.suppress(Exception):
        from psycopg.conninfo import conninfo_to_dict

        secret = conninfo_to_dict(dsn).get("password")
        if secret:
            text = text.replace(str(secret), "***")
    import os

    env_secret = os.environ.get("PGPASSWORD")
    if env_secret:
        text = text.replace(env_secret, "***")
    return text

