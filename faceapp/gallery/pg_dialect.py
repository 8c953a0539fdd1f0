"""The PostgreSQL dialect: connection (with backoff), migrations, locking and errors.

:class:`PostgresDialect` is what :class:`~faceapp.gallery.sql_store.SQLStore` needs of a
PostgreSQL database (see :mod:`faceapp.gallery.pg_store` for the store itself). Every write
is one transaction that takes the gallery row's lock first (so writers from any number of
devices are serialised and generations never collide), bumps the generation, logs a token
of its own and sends a ``NOTIFY`` that running devices receive at once
(:mod:`faceapp.gallery.pg_listen`). The schema is brought up to date by versioned
migrations, under an advisory lock.

Passwords come only from libpq's own places (``PGPASSWORD``, the password file, a service
file); an address that contains one is refused, and every message shows the address
without it (:func:`~faceapp.config.redact`). When the server cannot be reached, requests
are refused with one line (:class:`~faceapp.errors.GalleryUnavailableError`); the
connection is made again with backoff.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from faceapp.backoff import Backoff
from faceapp.config import check_no_password, redact
from faceapp.errors import DuplicatePersonError, GalleryError, GalleryUnavailableError
from faceapp.gallery import integrity
from faceapp.gallery.pg_listen import CHANNEL
from faceapp.gallery.sql_dialect import Row, Tx
from faceapp.gallery.store import new_row_id

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # before the first try, then after each failure
_CHUNK = 50_000

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
    (4, """
ALTER TABLE templates ADD COLUMN IF NOT EXISTS checksum BIGINT;
ALTER TABLE negatives ADD COLUMN IF NOT EXISTS checksum BIGINT;
"""),
    # Every write logs a random token ('write', no model): the history id of its generation.
    (5, """
ALTER TABLE changes DROP CONSTRAINT IF EXISTS changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check CHECK (kind IN ('add', 'remove', 'owner', 'write'));
"""),
    # Envelope encryption: a wrapped data key per person; the check value of the gallery key
    # (the key itself is never on the server). SQLStore.unlock encrypts the rows already there.
    (6, """
ALTER TABLE persons ADD COLUMN IF NOT EXISTS data_key BYTEA;
ALTER TABLE persons ADD COLUMN IF NOT EXISTS name_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS persons_name_key ON persons (name_key);
ALTER TABLE gallery ADD COLUMN IF NOT EXISTS key_check TEXT;
"""),
    # A copy into this database marks it first and clears the mark once checked (faceapp.gallery.copy):
    # a marked gallery is the rest of an interrupted copy, which no device opens.
    (7, """
ALTER TABLE gallery ADD COLUMN IF NOT EXISTS incomplete_copy TEXT;
"""),
    # What of a person is sealed (faceapp.gallery.encryption.FIELDS_SEALED: also their templates'
    # sources and qualities); SQLStore.unlock seals the rest of the people already there.
    (8, """
ALTER TABLE persons ADD COLUMN IF NOT EXISTS seal_level INTEGER;
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
_LOCK_KEY = 0x66616365  # advisory lock id for migrations ("face")




@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """A query written with ``?`` placeholders in psycopg's style (``%s``, and ``%`` doubled)."""
    def swap(m: re.Match[str]) -> str:
        text = m.group(0)
        return "%s" if text == "?" else text.replace("%", "%%")

    return re.sub(r"'[^']*'|\?|%", swap, sql)


class _PgTx:
    """An open transaction on a psycopg cursor."""

    def __init__(self, cur: Any, generation: int = 0) -> None:
        self.cur = cur
        self.generation = generation

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.cur.execute(_pg(sql), params)
        return list(self.cur.fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(_pg(sql), params)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cur.executemany(_pg(sql), rows)


class PostgresDialect:
    """A PostgreSQL database: connection (with backoff), migrations, locking and errors.

    Args:
        dsn: a libpq URI (``postgresql://user@host:port/dbname``) or key=value string,
            without a password.

    Raises:
        SettingsError: the address is malformed or contains a password.
        GalleryUnavailableError: the server cannot be reached.
        GalleryError: psycopg is missing, or the database was written by a newer faceapp.

    Attributes:
        invalidate: called after every commit and lost connection (a cached state may be stale).
        offline_logged: the server was reported unreachable and not yet reported back.
    """

    read_only = False
    distinct = "IS DISTINCT FROM"
    find = "strpos"
    # The fifth column is the history id: the token the write that made this generation logged.
    state_sql = ("SELECT gallery_id, generation, model_id, dim, (SELECT template_id FROM changes "
                 "WHERE changes.generation = gallery.generation AND kind = 'write' LIMIT 1) FROM gallery")
    set_model_sql = "UPDATE gallery SET model_id = ?"
    set_dim_sql = "UPDATE gallery SET dim = ?"
    key_check_sql = "SELECT key_check FROM gallery"
    set_key_check_sql = "UPDATE gallery SET key_check = ?"
    claim_key_check_sql = "UPDATE gallery SET key_check = ? WHERE key_check IS NULL RETURNING key_check"
    copy_mark_sql = "SELECT incomplete_copy FROM gallery"
    mark_copy_sql = "UPDATE gallery SET incomplete_copy = ?"
    clear_copy_sql = "UPDATE gallery SET incomplete_copy = NULL"

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise GalleryError("a PostgreSQL gallery needs psycopg: pip install 'faceapp[postgres]'") from exc
        check_no_password(dsn)
        self.dsn = dsn
        self.location = redact(dsn)
        self.mutex = threading.RLock()
        self.backoff = Backoff(BACKOFF_S)
        self.invalidate: Any = lambda: None
        self.offline_logged = False
        self._con: Any = None
        with self.mutex:
            self._connection()

    @staticmethod
    def fold(expr: str) -> str:
        return f"lower({expr})"

    @staticmethod
    def id_chunks(column: str, ids: Sequence[int]) -> Iterator[tuple[str, list[Any]]]:
        for start in range(0, len(ids), _CHUNK):
            yield f"{column} = ANY(?)", [list(ids[start : start + _CHUNK])]

    # ------------------------------------------------------------------ connection

    def unavailable(self, exc: BaseException | None) -> GalleryUnavailableError:
        """The one-line error for a server that cannot be reached."""
        return GalleryUnavailableError(
            f"gallery server {self.location} is not reachable ({self.reason(exc)}); changes are refused until it "
            "is back, matching goes on with the last synced gallery"
        )

    def reason(self, exc: BaseException | None) -> str:
        """The first line of a driver error, with anything that could be a secret removed."""
        if exc is None:
            return "reconnecting shortly"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        text = text.replace(self.dsn, self.location)
        with contextlib.suppress(Exception):
            from psycopg.conninfo import conninfo_to_dict

            secret = conninfo_to_dict(self.dsn).get("password")
            if secret:
                text = text.replace(str(secret), "***")
        env_secret = os.environ.get("PGPASSWORD")
        if env_secret:
            text = text.replace(env_secret, "***")
        return text

    def connect(self, autocommit: bool = True) -> Any:
        """A new connection of its own (the change listener keeps one)."""
        import psycopg

        params: dict[str, Any] = {"autocommit": autocommit, "application_name": "faceapp"}
        if "connect_timeout" not in self.dsn:
            params["connect_timeout"] = CONNECT_TIMEOUT_S
        return psycopg.connect(self.dsn, **params)

    @property
    def disconnected(self) -> bool:
        return self._con is None or self._con.closed

    def _connection(self) -> Any:
        """The open connection, connecting when needed (with backoff after failures)."""
        import psycopg

        if not self.disconnected:
            return self._con
        if not self.backoff.ready():
            raise self.unavailable(None)
        try:
            con = self.connect()
        except psycopg.OperationalError as exc:
            self.backoff.failed()
            raise self.unavailable(exc) from None
        self.backoff.succeeded()
        if self.offline_logged:
            log.warning("gallery server %s is reachable again", self.location)
            self.offline_logged = False
        self._con = con
        self._migrate(con)
        return con

    def _drop(self) -> None:
        con, self._con = self._con, None
        self.invalidate()
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor on the shared connection; connection failures become one clear error."""
        import psycopg

        with self.mutex:
            con = self._connection()
            try:
                with con.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                self._drop()
                raise self.unavailable(exc) from None
            except psycopg.errors.UniqueViolation as exc:
                raise DuplicatePersonError("that name is already taken in the gallery; choose another name") from exc
            except psycopg.Error as exc:
                if con.closed or con.broken:
                    self._drop()
                    raise self.unavailable(exc) from None
                raise GalleryError(f"gallery database {self.location} refused the request ({self.reason(exc)})") \
                    from None

    def rows(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]:
        with self.cursor() as cur:
            cur.execute(_pg(sql), params, binary=binary)
            return list(cur.fetchall())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction: locks the gallery row, bumps the generation, notifies on commit.

        Nothing is written when it raises.
        """
        with self.cursor() as cur, cur.connection.transaction():
            cur.execute("UPDATE gallery SET generation = generation + 1 RETURNING generation")
            gen = int(cur.fetchone()[0])
            # A token no other history has: a device that synced this generation of a history that
            # a restore discarded sees another token here (ChangeLog.since).
            cur.execute("INSERT INTO changes (generation, kind, template_id) VALUES (%s, 'write', %s)",
                        (gen, new_row_id()))
            yield _PgTx(cur, gen)
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(gen)))
        self.invalidate()

    @contextlib.contextmanager
    def batch(self) -> Iterator[Tx]:
        """A transaction that is not a gallery write (no generation, no notification)."""
        with self.cursor() as cur, cur.connection.transaction():
            yield _PgTx(cur)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A read-only view of one moment (``REPEATABLE READ``)."""
        import psycopg

        with self.cursor() as cur:
            con = cur.connection
            con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                with con.transaction():
                    yield _PgTx(cur)
            finally:
                con.isolation_level = None

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
                if version == 4:  # the vectors stored so far get their checksum
                    for table in ("templates", "negatives"):
                        rows = con.execute(f"SELECT id, embedding FROM {table}").fetchall()  # type: ignore[arg-type]
                        for rid, blob in rows:
                            con.execute(f"UPDATE {table} SET checksum = %s WHERE id = %s",  # type: ignore[arg-type]
                                        (integrity.checksum(rid, bytes(blob)), rid))
                con.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("gallery database %s: applied schema migration %d", self.location, version)

    # ------------------------------------------------------------------ housekeeping

    def erased(self) -> bool:
        """Nothing to clear: rows are deleted and the server's files are left to autovacuum."""
        return True

    def describe(self) -> dict[str, Any]:
        rows = self.rows("SELECT pg_database_size(current_database()), current_setting('server_version'), "
                         "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
        size, version, ssl = rows[0]
        return {"kind": "postgresql", "path": self.location, "read_only": False, "database_bytes": int(size),
                "server_version": version, "tls": bool(ssl), "permissions": {}, "private": True}

    def check(self) -> str:
        rows = self.rows(
            "SELECT (SELECT COUNT(*) FROM templates t LEFT JOIN persons p ON p.id = t.person_id WHERE p.id IS NULL), "
            "(SELECT COUNT(*) FROM templates WHERE length(embedding) % 4 <> 0)")
        orphans, bad = rows[0]
        problems = [f"{orphans} template(s) without a person"] if orphans else []
        problems += [f"{bad} template(s) with a damaged embedding"] if bad else []
        return "; ".join(problems) or "ok"

    def close(self) -> None:
        with self.mutex:
            self._drop()
