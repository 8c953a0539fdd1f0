"""The one backoff schedule: longer waits after each failure, from the start after a success."""

from __future__ import annotations

import pytest

from faceapp.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_waits_grow_then_repeat_and_start_again_after_a_success():
    clock = Clock()
    b = Backoff((0.0, 1.0, 5.0), clock=clock)
    assert b.delay == 0.0 and b.ready()
    assert [b.failed() for _ in range(4)] == [1.0, 5.0, 5.0, 5.0]
    assert not b.ready()
    clock.now += 4.9
    assert not b.ready()
    clock.now += 0.1
    assert b.ready()
    b.succeeded()
    assert b.delay == 0.0 and b.ready() and b.failed() == 1.0


def test_needs_a_delay():
    with pytest.raises(ValueError):
        Backoff(())
