"""Hearing other devices' writes to a PostgreSQL gallery at once: a ``LISTEN`` thread.

Every write transaction of a PostgreSQL store ends with a ``NOTIFY`` on :data:`CHANNEL`
(see :class:`faceapp.gallery.pg_dialect.PostgresDialect`). A :class:`Listener` keeps its own
connection that listens on it, and calls back on every notification, on every (re)connect
(anything may have happened meanwhile), and tells when its connection is lost. It
reconnects with backoff until stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from faceapp.backoff import Backoff

log = logging.getLogger(__name__)

CHANNEL = "faceapp_gallery"


class Listener:
    """A background thread that ``LISTEN``\\s for the gallery's changes.

    Args:
        connect: opens a new autocommit connection (raises ``psycopg.Error``).
        changed: called when something may have changed.
        lost: called when the connection is lost (changes may now go unheard).
        backoff: the waits between reconnection attempts.
        describe: an error as it may be shown (without secrets).
    """

    def __init__(self, connect: Callable[[], Any], changed: Callable[[], None], lost: Callable[[], None],
                 backoff: Backoff, describe: Callable[[BaseException], str]) -> None:
        self._connect = connect
        self._changed = changed
        self._lost = lost
        self._backoff = backoff
        self._describe = describe
        self._stop = threading.Event()
        self.listening = False
        self._thread = threading.Thread(target=self._run, name="faceapp-pg-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with self._connect() as con:
                    con.execute(f"LISTEN {CHANNEL}")
                    self._backoff.succeeded()
                    self.listening = True
                    self._changed()  # anything may have happened while we were not listening
                    while not self._stop.is_set():
                        for _ in con.notifies(timeout=0.5, stop_after=1):
                            self._changed()
            except psycopg.Error as exc:
                self.listening = False
                self._lost()
                delay = self._backoff.failed()
                log.debug("gallery change listener lost (%s); retrying in %.1f s", self._describe(exc), delay)
                self._stop.wait(delay)
        self.listening = False

    def close(self, timeout: float = 2.0) -> None:
        """Stop listening and wait up to ``timeout`` seconds for the thread."""
        self._stop.set()
        self._thread.join(timeout=timeout)
