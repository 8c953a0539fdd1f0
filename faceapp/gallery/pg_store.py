"""A gallery store in a PostgreSQL database, shared by several devices.

The database holds what a folder holds (people, templates with their model id and aligned
face crop, negative samples, a random gallery id and a generation bumped by every write;
the queries are :class:`~faceapp.gallery.sql_store.SQLStore`'s, the database's part
:class:`~faceapp.gallery.pg_dialect.PostgresDialect`'s) plus a *change log*
(:class:`ChangeLog`): one row per template added, removed or moved to another name, with
the generation that did it, so a device brings its local index up to date by reading only
what changed. Running devices hear of every write at once (:mod:`faceapp.gallery.pg_listen`).
The event history of running devices lives in the same database (:mod:`faceapp.gallery.events`).

Search never runs on the server: each device keeps its own index (see
:mod:`faceapp.gallery.gallery`). Rows are really deleted (no soft delete) and the tables are
left to autovacuum (an explicit ``VACUUM`` of a large gallery after every removal
would take seconds, and would not overwrite the freed bytes either: the server's disk
should be encrypted, as for any database of personal data).

When the server cannot be reached, writes are refused with one line
(:class:`~faceapp.errors.GalleryUnavailableError`) while reads of the gallery's state and of
the names of indexed templates answer from what this process saw last, so a running device
keeps matching; it reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from faceapp.backoff import Backoff
from faceapp.config import redact
from faceapp.errors import GalleryUnavailableError
from faceapp.gallery.events import EventRecord
from faceapp.gallery.keys import KeyStore
from faceapp.gallery.pg_dialect import BACKOFF_S, SCHEMA_VERSION, PostgresDialect
from faceapp.gallery.pg_listen import Listener
from faceapp.gallery.sql_dialect import OWNERS_SQL, Row, Tx, state_from_row
from faceapp.gallery.sql_store import SQLStore
from faceapp.gallery.store import Changes, StoreState

__all__ = ["PostgresStore", "PostgresDialect", "ChangeLog", "EventRecord", "SCHEMA_VERSION", "redact"]

log = logging.getLogger(__name__)


class ChangeLog:
    """The ``changes`` table: what every write did to templates, by generation."""

    @staticmethod
    def templates(tx: Tx, kind: str, rows: Sequence[tuple[int, str | None]]) -> None:
        """Log templates ``"add"``-ed or ``"remove"``-d by this transaction."""
        tx.many("INSERT INTO changes (generation, kind, template_id, model_id) VALUES (?, ?, ?, ?)",
                [(tx.generation, kind, int(t), m) for t, m in rows])

    @staticmethod
    def owner(tx: Tx, person_id: int) -> None:
        """Log that the templates of person ``person_id`` now answer to another name or person."""
        tx.run("INSERT INTO changes (generation, kind, template_id, model_id) "
               "SELECT ?, 'owner', id, model_id FROM templates WHERE person_id = ?", (tx.generation, person_id))

    @staticmethod
    def since(db: PostgresDialect, generation: int, model_id: str,
              history: int | None = None) -> tuple[Changes, list[Row]] | None:
        """Templates of ``model_id`` added and removed after ``generation``, read in one snapshot,
        with ``(template id, person id, name)`` of those added or moved.

        Returns ``None`` when the log does not reach back that far, or when ``history`` (the
        history id the caller synced at ``generation``) is not this server's: a database
        restored from an older backup has gone on with another history.
        """
        with db.snapshot() as tx:
            [(g, gen, m, d, start, h)] = tx.rows(
                "SELECT gallery_id, generation, model_id, dim, log_start, (SELECT template_id FROM changes "
                "WHERE changes.generation = gallery.generation AND kind = 'write' LIMIT 1) FROM gallery")
            if generation < int(start) or generation > int(gen):
                return None
            if history is not None:
                there = tx.rows("SELECT template_id FROM changes WHERE generation = ? AND kind = 'write'",
                                (int(generation),))
                if not there or int(there[0][0]) != int(history):
                    log.warning("gallery %s has another history than the one this device synced (restored from "
                                "a backup?); rebuilding the index from the server", db.location)
                    return None
            added: dict[int, None] = {}
            removed: set[int] = set()
            moved: set[int] = set()
            for kind, tid in tx.rows("SELECT kind, template_id FROM changes WHERE generation > ? AND model_id = ? "
                                     "ORDER BY seq", (int(generation), model_id)):
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
            owners: list[Row] = []
            if len(new) or moved:
                [(cond, params)] = db.id_chunks("t.id", new.tolist() + sorted(moved))
                owners = tx.rows(OWNERS_SQL + cond, params)
        state = state_from_row((g, gen, m, d, h))
        return Changes(state=state, added=new, removed=np.array(sorted(removed), np.int64)), owners


class PostgresStore(SQLStore):
    """A :class:`~faceapp.gallery.store.Store` in a PostgreSQL database.

    Args:
        dsn: a libpq URI (``postgresql://user@host:port/dbname``) or key=value string,
            without a password.
        listen: keep a second connection that ``LISTEN``\\s for other devices' writes, so
            :meth:`state` answers without a round trip until something changes and
            :meth:`wait_for_change` wakes within milliseconds of a commit.
        keys: where this device keeps gallery keys (see :meth:`~faceapp.gallery.sql_store.SQLStore.unlock`).
        progress: see :meth:`~faceapp.gallery.sql_store.SQLStore.unlock`.
        copying: opened by a copy into it (see :meth:`~faceapp.gallery.sql_store.SQLStore.finish_opening`).

    Raises:
        SettingsError: the address is malformed or contains a password.
        GalleryUnavailableError: the server cannot be reached.
        GalleryError: the database was written by a newer faceapp, is the rest of an interrupted
            copy, or cannot be used.
    """


    def __init__(self, dsn: str, *, listen: bool = True, keys: KeyStore | None = None,
                 progress: Callable[[int, int], None] | None = None, copying: bool = False) -> None:
        self.pg = PostgresDialect(dsn)
        super().__init__(self.pg, ChangeLog())
        self._mutex = threading.RLock()
        self._owners: dict[int, tuple[int, str]] = {}
        self._changed = threading.Event()
        self._fresh = False  # the cached state is current (the listener is connected and quiet)
        self.pg.invalidate = self._stale
        self._last_state: StoreState | None = super().state()
        self._listener = Listener(self.pg.connect, self._heard, self._stale, Backoff(BACKOFF_S),
                                  self.pg.reason) if listen else None
        self.finish_opening(keys, progress, copying=copying)

    # ------------------------------------------------------------------ what this device saw last

    def _stale(self) -> None:
        self._fresh = False

    def _heard(self) -> None:
        self._fresh = False
        self._changed.set()

    @property
    def _listening(self) -> bool:
        return self._listener is not None and self._listener.listening

    def _reads_wait(self) -> bool:
        """While the server is away, matching does not wait on connection attempts: the
        listener thread retries with backoff, and reads go back to the server once it is in."""
        return self._listener is not None and not self._listener.listening and self.pg.disconnected

    def wait_for_change(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for another write to the gallery.

        Returns:
            ``True`` when something may have changed (then call :meth:`state`).
        """
        fired = self._changed.wait(timeout)
        self._changed.clear()
        return fired

    def state(self) -> StoreState:
        """The gallery's state; the last one seen when the server cannot be reached.

        While the change listener is connected and no change was announced, this answers
        without asking the server.
        """
        if self._last_state is not None and (self._fresh and self._listening or self._reads_wait()):
            return self._last_state
        try:
            self._fresh = self._listening  # set before reading: a notification during the read clears it
            state = super().state()
        except GalleryUnavailableError as exc:
            self._fresh = False
            if self._last_state is None:
                raise
            if not self.pg.offline_logged:
                log.warning("%s", exc)
                self.pg.offline_logged = True
            return self._last_state
        self._last_state = state
        return state

    def template_ids(self, model_id: str) -> np.ndarray:
        rows = self.template_owners(model_id)
        with self._mutex:
            self._owners = {int(t): (int(p), n) for t, p, n in rows}
        return np.array([r[0] for r in rows], dtype=np.int64)

    def changes_since(self, generation: int, model_id: str, history: int | None = None) -> Changes | None:
        """Templates of ``model_id`` added and removed after ``generation``, read in one snapshot.

        Returns ``None`` when the change log does not reach back that far, or ``history`` is
        not the id this server's history had at ``generation`` (the caller then compares all ids).
        """
        found = ChangeLog.since(self.pg, generation, model_id, history)
        if found is None:
            return None
        changes, owners = found
        owners = self.named(owners, 1, 2)
        with self._mutex:
            self._owners.update({int(t): (int(p), n) for t, p, n in owners})
            for t in changes.removed.tolist():
                self._owners.pop(t, None)
        self._last_state = changes.state
        return changes

    def _forget(self, template_ids: Sequence[int]) -> None:
        with self._mutex:
            for t in template_ids:
                self._owners.pop(t, None)

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
                raise self.pg.unavailable(None)
            out = super().owners(want)
        except GalleryUnavailableError:
            with self._mutex:
                return {t: self._owners[t] for t in want if t in self._owners}
        with self._mutex:
            self._owners.update(out)
            for t in want:
                if t not in out:
                    self._owners.pop(t, None)
        return out

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        super().close()
