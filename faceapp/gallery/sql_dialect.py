"""What a :class:`~faceapp.gallery.sql_store.SQLStore` needs of a database: the :class:`Dialect`.

A dialect supplies what differs between SQLite (:mod:`faceapp.gallery.sqlite_store`) and
PostgreSQL (:mod:`faceapp.gallery.pg_dialect`): the connection and its errors, placeholders,
case-insensitive comparison, "differs, NULL included", lists of ids, where the gallery's state
(id, generation, model) is kept, and how a write transaction is locked. A store that keeps a
change log writes it through a :class:`ChangeRecorder`.

Queries are written with ``?`` placeholders; a dialect whose driver wants another style
rewrites them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from faceapp.gallery.store import StoreState

Row = tuple[Any, ...]

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
    """What differs between the databases a :class:`~faceapp.gallery.sql_store.SQLStore` speaks to.

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
        copy_mark_sql: one row with the source of an unfinished copy into this gallery (``NULL``: none).
        mark_copy_sql: sets it (one parameter).
        clear_copy_sql: clears it.
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
    copy_mark_sql: str
    mark_copy_sql: str
    clear_copy_sql: str

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


def as_bytes(value: Any) -> bytes:
    """A stored binary value as ``bytes`` (drivers hand back ``memoryview`` or ``bytes``)."""
    return bytes(value)
