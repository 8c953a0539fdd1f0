"""The event history of a gallery: what running devices saw, kept for a while.

Every gallery keeps one, in its own database: the ``events`` table of a folder's SQLite
database (:mod:`faceapp.gallery.sqlite_store`) or of a PostgreSQL gallery
(:mod:`faceapp.gallery.pg_store`). Events are kept only when asked (``watch --record``, the
``record_events`` setting). They are history, not gallery content: writing them does not
bump the generation. A person's events (snapshots included) are erased with the person
(``ON DELETE CASCADE``); events older than the retention are deleted with their snapshots.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from faceapp.gallery.store import new_row_id

if TYPE_CHECKING:
    from faceapp.gallery.sql_dialect import Row, Tx


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


class _Database(Protocol):
    def fold(self, expr: str) -> str: ...
    def rows(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]: ...
    def batch(self) -> contextlib.AbstractContextManager[Tx]: ...


class Sealer(Protocol):
    """Seals and opens event snapshots with the person's data key (see :mod:`faceapp.gallery.crypto`)."""

    def find_person(self, tx: Tx, name: str) -> int | None: ...
    def seal_snapshot(self, tx: Tx, person_id: int | None, event_id: int, data: bytes) -> bytes: ...
    def named(self, rows: Sequence[Row], pid: int, name: int) -> list[Row]: ...
    def open_snapshot(self, person_id: int | None, event_id: int, blob: bytes) -> bytes | None: ...


class EventHistory:
    """Reads and writes the ``events`` table.

    Args:
        db: the database (a :class:`~faceapp.gallery.sql_dialect.Dialect`).
        person_id: a person's id from their name (raises for an unknown name).
        clock: Unix time now (injectable for tests).
    """

    def __init__(self, db: _Database, person_id: Callable[[str], int],
                 clock: Callable[[], float] = time.time, *, sealer: Sealer | None = None) -> None:
        self.db = db
        self.person_id = person_id
        self.clock = clock
        self.sealer = sealer

    def add(self, events: Sequence[EventRecord], retention_days: float) -> None:
        """Keep events (one transaction) and drop those older than ``retention_days``.

        Args:
            events: the events to keep (``snapshot`` bytes are stored as given).
            retention_days: events older than this many days are deleted.
        """
        cutoff = self.clock() - retention_days * 86400.0
        with self.db.batch() as tx:
            rows = []
            for e in events:
                pid = self.sealer.find_person(tx, e.person) if e.person and self.sealer is not None else None
                eid = new_row_id()  # known before the insert: the snapshot is sealed bound to its row
                snap = e.snapshot
                if snap is not None and self.sealer is not None:  # sealed with the person's key, bound to the row
                    snap = self.sealer.seal_snapshot(tx, pid, eid, snap)
                rows.append((eid, e.time, pid, e.decision, e.similarity, e.track_id,
                             json.dumps(e.box) if e.box else None, e.source, e.device, snap))
            if rows:
                tx.many("INSERT INTO events (id, time, person_id, decision, similarity, track_id, box, source, device, "
                        "snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            tx.run("DELETE FROM events WHERE time < ?", (cutoff,))

    def read(self, since: float | None = None, person: str | None = None, *,
             snapshots: bool = False) -> list[EventRecord]:
        """Kept events, oldest first, from ``since`` (Unix time) and of ``person`` (a name).

        Args:
            since: only events at or after this Unix time.
            person: only this person's events.
            snapshots: also read the snapshot bytes (otherwise only ``has_snapshot`` is set).
        """
        pick = "e.snapshot" if snapshots else "CASE WHEN 1 = 0 THEN e.snapshot END"  # a typed NULL
        sql = ("SELECT e.time, p.name, e.decision, e.similarity, e.track_id, e.box, e.source, e.device, "
               f"{pick}, e.snapshot IS NOT NULL, e.id, e.person_id FROM events e "
               "LEFT JOIN persons p ON p.id = e.person_id WHERE e.time >= ?")
        params: list[Any] = [since if since is not None else 0.0]
        if person is not None:
            sql += " AND e.person_id = ?"
            params.append(self.person_id(person))
        rows = self.db.rows(sql + " ORDER BY e.time, e.id", params)
        if self.sealer is not None:
            rows = self.sealer.named(rows, 11, 1)
        return [EventRecord(float(t), n, d, None if s is None else float(s), tr,
                            tuple(json.loads(b)) if b else None, src, dev, self._opened(pid, eid, snap), bool(has))
                for t, n, d, s, tr, b, src, dev, snap, has, eid, pid in rows]

    def _opened(self, pid: int | None, eid: int, snap: Any) -> bytes | None:
        if snap is None:
            return None
        if self.sealer is None:
            return bytes(snap)
        return self.sealer.open_snapshot(pid, int(eid), bytes(snap))

    def last_seen(self) -> dict[str, float]:
        """``{name: Unix time of the person's latest kept match event}`` for people seen at all."""
        rows = self.db.rows("SELECT p.id, p.name, max(e.time) FROM events e JOIN persons p ON p.id = e.person_id "
                            "WHERE e.decision = 'match' GROUP BY p.id, p.name")
        if self.sealer is not None:
            rows = self.sealer.named(rows, 0, 1)
        return {n: float(t) for _, n, t in rows}
