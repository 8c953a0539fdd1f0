"""Waiting longer after each failure: one schedule for every reconnecting loop.

Used by the PostgreSQL store (its connection and its change listener) and by ``watch``
(reopening a lost camera or stream).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


class Backoff:
    """Delays that grow with consecutive failures and start again after a success.

    Args:
        delays: seconds to wait before the 1st try, after the 1st failure, after the 2nd, ...;
            the last one repeats.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, delays: Sequence[float], clock: Callable[[], float] = time.monotonic) -> None:
        if not delays:
            raise ValueError("a backoff needs at least one delay")
        self.delays = tuple(float(d) for d in delays)
        self.clock = clock
        self.failures = 0
        self._ready_at = 0.0

    @property
    def delay(self) -> float:
        """The wait before the next try, after the failures so far."""
        return self.delays[min(self.failures, len(self.delays) - 1)]

    def failed(self) -> float:
        """Count a failure; returns the seconds to wait before the next try."""
        self.failures += 1
        self._ready_at = self.clock() + self.delay
        return self.delay

    def succeeded(self) -> None:
        """Start the schedule again."""
        self.failures = 0
        self._ready_at = 0.0

    def ready(self) -> bool:
        """Whether the wait after the last failure is over."""
        return self.clock() >= self._ready_at
