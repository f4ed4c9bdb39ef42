"""Reads shared by concurrent askers, so orders sent together cost a few RPC calls, not one each."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from gevent.event import AsyncResult
from solders.pubkey import Pubkey

from supervision.coalesced import Coalesced
from venue.rpc_client import AccountData

T = TypeVar("T")
AccountsRead = tuple[int, list[AccountData | None]]


class SharedRead(Generic[T]):
    """One read answers everyone who asks while it is in flight or within `max_age_s` of its
    start, so orders sent together cost one call (the latest blockhash, read once a slot).

    For the greenlets of one hub (no locks): the first asker reads, the others wait for it."""

    def __init__(self, read: Callable[[], T], max_age_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._max_age_s = max_age_s
        self._clock = clock
        self._last: tuple[float, T] | None = None  # (when the read started, its value)
        self._flight: AsyncResult | None = None

    def get(self) -> T:
        """The shared value, read now unless a fresh enough one is known or on its way."""
        if self._last is not None and self._clock() - self._last[0] <= self._max_age_s:
            return self._last[1]
        if self._flight is not None:
            return self._flight.get()
        flight = self._flight = AsyncResult()
        started = self._clock()
        try:
            value = self._read()
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            self._flight = None
        self._last = (started, value)
        flight.set(value)
        return value


class AccountBatcher:
    """Account reads asked at once merged into getMultipleAccounts calls: an ask made while a
    read is in flight joins the next read, so it is answered from a read sent after it was
    made (never an older one) and N concurrent asks cost a few calls instead of N."""

    def __init__(self, read: Callable[[list[Pubkey]], AccountsRead]) -> None:
        self._read = read
        self._coalesced: Coalesced[list[Pubkey], AccountsRead] = Coalesced(
            self._read_merged, most=sys.maxsize)

    def get(self, keys: Sequence[Pubkey]) -> AccountsRead:
        """(the read's context slot, the accounts in the order asked)."""
        return self._coalesced(list(keys))

    def _read_merged(self, asks: list[list[Pubkey]]) -> list[AccountsRead]:
        """One read of every key asked (each once), answered to each ask in its order."""
        keys = list(dict.fromkeys(key for ask in asks for key in ask))
        slot, accounts = self._read(keys)
        found = dict(zip(keys, accounts, strict=True))
        return [(slot, [found[key] for key in ask]) for ask in asks]
