"""Opening the store a gallery address names: a folder (SQLite) or a PostgreSQL database.

The address is parsed once, by :class:`faceapp.config.GalleryAddress`; this is the only
module that picks a store implementation from it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from faceapp.config import GalleryAddress
from faceapp.gallery.store import Store


def open_store(spec: str | Path | GalleryAddress, *, progress: Callable[[int, int], None] | None = None,
               copying: bool = False) -> Store:
    """Open the store a ``gallery`` setting names: a PostgreSQL address or a folder.

    Args:
        spec: ``postgresql://user@host:port/dbname``, ``host=... dbname=...``, or a folder.
        progress: called with ``(people done, people to encrypt)`` while a gallery written
            before encryption is encrypted (see :meth:`~faceapp.gallery.sql_store.SQLStore.unlock`).
        copying: the store is opened by a copy into it, so the rest of an interrupted copy is
            opened too (otherwise it is refused: see :mod:`faceapp.gallery.copy`).

    Raises:
        GalleryError: the store cannot be opened (see the store classes), or is the rest of an
            interrupted copy.
        SettingsError: a database address is malformed or holds a password.
    """
    address = spec if isinstance(spec, GalleryAddress) else GalleryAddress.parse(spec)
    if address.dsn is not None:
        from faceapp.gallery.pg_store import PostgresStore

        return PostgresStore(address.dsn, progress=progress, copying=copying)
    from faceapp.gallery.sqlite_store import SQLiteStore

    assert address.folder is not None
    return SQLiteStore(address.folder, progress=progress, copying=copying)
