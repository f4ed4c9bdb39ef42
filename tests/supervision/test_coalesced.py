"""Coalesced calls: callers who come while a call runs share the next one, each gets its own
answer, and nobody is left waiting when a call fails or its greenlet is killed."""

from __future__ import annotations

import gevent
import pytest
from gevent.event import Event

from supervision.coalesced import Coalesced

WAIT_S = 5.0


class Held:
    """A batch function that records its batches and holds the first until released."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.batches: list[list[int]] = []
        self.started, self.release = Event(), Event()
        self._fail = fail

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.started.set()
        assert self.release.wait(WAIT_S)
        if self._fail is not None:
            raise self._fail
        return [item * 10 for item in items]


def test_callers_during_a_call_share_the_next_one_and_get_their_own_answers() -> None:
    held = Held()
    coalesced: Coalesced[int, int] = Coalesced(held, most=3)
    first = gevent.spawn(coalesced, 1)
    assert held.started.wait(WAIT_S)
    later = [gevent.spawn(coalesced, n) for n in range(2, 7)]
    gevent.idle()  # every later caller is waiting before the first call returns
    held.release.set()
    gevent.joinall([first, *later], timeout=WAIT_S, raise_error=True)
    assert [g.value for g in [first, *later]] == [10, 20, 30, 40, 50, 60]
    assert held.batches == [[1], [2, 3, 4], [5, 6]]  # at most `most` a call, in arrival order


class Killed(BaseException):
    """Not an Exception: what ends a greenlet rather than a call."""


@pytest.mark.parametrize("error", [ValueError("venue said no"), Killed()])
def test_a_failed_or_killed_call_fails_its_callers_and_those_waiting(
        error: BaseException) -> None:
    held = Held(fail=error)
    coalesced: Coalesced[int, int] = Coalesced(held, most=10)
    first = gevent.spawn(coalesced, 1)
    assert held.started.wait(WAIT_S)
    later = gevent.spawn(coalesced, 2)
    gevent.idle()
    held.release.set()
    gevent.joinall([first, later], timeout=WAIT_S)
    assert type(first.exception) is type(error)
    assert type(later.exception) is type(error)  # served by the next call, or failed with it


def test_with_a_key_a_call_holds_one_item_per_key_and_the_rest_wait_their_turn() -> None:
    held = Held()
    coalesced: Coalesced[int, int] = Coalesced(held, most=3, key=lambda n: n % 10)
    first = gevent.spawn(coalesced, 1)
    assert held.started.wait(WAIT_S)
    later = [gevent.spawn(coalesced, n) for n in (2, 12, 3, 22, 4, 5)]
    gevent.idle()
    held.release.set()
    gevent.joinall([first, *later], timeout=WAIT_S, raise_error=True)
    assert [g.value for g in [first, *later]] == [10, 20, 120, 30, 220, 40, 50]
    assert held.batches == [[1], [2, 3, 4], [12, 5], [22]]  # 12 and 22 share 2's key
