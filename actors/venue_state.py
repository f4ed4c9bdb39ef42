"""VenueState: the one slot clock, market snapshots and batched User reads every actor shares.

Reading the venue per order is a bug at scale (an RPC provider is tens of milliseconds away and
rate-limited), so this actor owns what one read can serve to many:
- the slot clock (actors.slot_clock): every read carries the Clock sysvar, and the slot and unix
  time between reads are extrapolated at the slot time observed so far (no polling; a stale clock
  is refreshed in the background while the extrapolation answers at once). Each read's clock is
  published (`Services.clock`), so `VenueStateClient.now` asks nothing while it is fresh;
- one snapshot per market per slot (oracle price, margin, size rules);
- User accounts, read through getMultipleAccounts in batches of up to 99 keys plus the clock.
  Asks that arrive while a read is in flight wait for it or join the next batch, so a fan-out's
  accounts cost a handful of calls whatever the number of asks (DataLoader-style coalescing);
  raw accounts (RawAccountsOf, e.g. the Swift gateway's SignedMsgUserOrders check) join the
  same batches.

A cached account is served only if it was read after the asker's `fresh_after`, and an order
about to leave for an account (`Sending`) drops what was read of it before, so no one sizes an
order from a read that predates their own last order. Reads go through the LegacyExecutor, the
owner of the RPC failover state.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import pykka
from driftpy.addresses import get_perp_market_public_key, get_user_account_public_key
from solders.pubkey import Pubkey

from actors.legacy_executor import ExecutorClient
from actors.messages import (
    Now,
    Observed,
    Prefetch,
    RawAccountsOf,
    Sending,
    SnapshotOf,
    UsersOf,
    UsersRead,
)
from actors.services import NamedActor, Services
from actors.slot_clock import PublishedClock, SlotClock
from supervision import Outcome, Pending, SupervisedActor
from venue.clock_sysvar import CLOCK_SYSVAR, read_clock
from venue.perp_market import read_perp_market
from venue.positions import UserSnapshot, read_user
from venue.profiles import VenueProfile
from venue.rpc_client import AccountData, RpcRateLimited
from venue.signed_msg_user_orders import signed_msg_user_orders_address
from venue.snapshot import ChainTime, MarketSnapshot

log = logging.getLogger(__name__)

KEYS_PER_READ = 99  # getMultipleAccounts takes 100 keys; one of them is the clock
READS_IN_FLIGHT = 4
CLOCK_REFRESH_S = 5.0  # an extrapolation older than this is refreshed in the background
RATE_LIMITED_PAUSE_S = 0.5  # after a read still refused with 429, the next one waits this
CALIBRATE_AFTER_S = (0.0, 1.5)  # clock reads at start, so the slot time is measured early
UserKey = tuple[Pubkey, int]


@functools.lru_cache(maxsize=65_536)
def user_account_key(program_id: Pubkey, authority: Pubkey, sub_account_id: int) -> Pubkey:
    """A User account's address (a PDA search, ~20 µs): derived once per process, not on every
    read of every open order's account."""
    return get_user_account_public_key(program_id, authority, sub_account_id)


@dataclass
class _Entry:
    started: float  # monotonic time the read that produced it was sent
    slot: int
    unix_ts: int
    value: Any  # UserSnapshot | MarketState | None


@dataclass
class _Want:
    keys: dict[Pubkey, Any]  # account key -> what the asker calls it
    fresh_after: float
    future: pykka.Future[Any]
    answer: Any  # Callable[[dict[Pubkey, _Entry]], Any]


@dataclass
class _Flight:
    started: float
    keys: frozenset[Pubkey]


@dataclass(frozen=True)
class _Read:
    flight: _Flight
    outcome: Outcome


@dataclass(frozen=True)
class _Calibrate:
    pass


@dataclass(frozen=True)
class _Resume:
    pass


class VenueState(SupervisedActor):
    """Owns the slot clock and the account cache; reads in batches off the mailbox."""

    def __init__(self, executor: ExecutorClient, profile: VenueProfile,
                 user_ttl_s: float = 10.0, clock: PublishedClock | None = None) -> None:
        super().__init__()
        self._executor = executor
        self._published = clock or PublishedClock()
        self._profile = profile
        self._user_ttl_s = user_ttl_s
        self._clock = SlotClock(slot_ms=float(profile.slot_time_ms))
        self._cache: dict[Pubkey, _Entry] = {}
        self._parsers: dict[Pubkey, str] = {}  # key -> "user" | "market"
        self._waiting: dict[Pubkey, dict[int, _Want]] = {}  # key -> the wants naming it
        self._clock_wants: list[_Want] = []  # wants of the clock alone (no account)
        self._to_read: dict[Pubkey, float] = {}  # key -> the freshest fresh_after wanted
        self._flights: list[_Flight] = []
        self._floor: dict[Pubkey, float] = {}  # key -> reads sent before this are stale
        self._held_until = 0.0  # no reads before this (the provider answered 429)

    def on_start(self) -> None:
        for delay_s in CALIBRATE_AFTER_S:
            self.send_later(delay_s, _Calibrate())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Resume):
            return self._pump()
        if isinstance(message, _Calibrate):
            self._want({}, time.monotonic(), None)
            return None
        if isinstance(message, Now):
            return self._now()
        if isinstance(message, SnapshotOf):
            return self._snapshot(message.market_index)
        if isinstance(message, UsersOf):
            return self._users(message.authorities, message.fresh_after)
        if isinstance(message, Prefetch):
            # the subscribers' User accounts and, in the same batches, their SignedMsgUserOrders
            # accounts (the Swift gateway asks whether each exists before the first POST)
            keys: dict[Pubkey, Any] = {}
            for authority, sub_account_id in message.authorities:
                user = self._user_key(authority, sub_account_id)
                signed = signed_msg_user_orders_address(self._profile, authority)
                self._parsers[user], self._parsers[signed] = "user", "raw"
                keys[user], keys[signed] = (authority, sub_account_id), signed
            self._want(keys, time.monotonic(), None)
            return None
        if isinstance(message, RawAccountsOf):
            for key in message.keys:
                self._parsers[key] = "raw"
            return self._want({key: key for key in message.keys}, message.fresh_after,
                              lambda entries: {k: e.value for k, e in entries.items()})
        if isinstance(message, Sending):
            key = self._user_key(message.authority, message.sub_account_id)
            self._cache.pop(key, None)
            self._floor[key] = time.monotonic()
            return None
        if isinstance(message, Observed):
            return self._observed(message)
        if isinstance(message, _Read):
            return self._read_done(message)
        return super().on_receive(message)

    # --- the slot clock ----------------------------------------------------------------------

    def _now(self) -> Any:
        if self._clock.at == 0.0:  # nothing read yet: one read of the clock alone
            return self._want({}, time.monotonic(), lambda _entries: self._clock.chain_time())
        if time.monotonic() - self._clock.at > CLOCK_REFRESH_S and not self._clock.refreshing:
            self._clock.refreshing = True
            self._want({}, time.monotonic(), None)
        return self._clock.chain_time()

    # --- asks ----------------------------------------------------------------------------------

    def _snapshot(self, market_index: int) -> Any:
        key = get_perp_market_public_key(self._profile.program_id, market_index)
        self._parsers[key] = "market"
        # one snapshot per slot: a read that started within the current slot is fresh enough
        fresh_after = time.monotonic() - self._clock.slot_ms / 1000

        def answer(entries: dict[Any, _Entry]) -> MarketSnapshot:
            entry = entries[market_index]
            if entry.value is None:
                raise ValueError(f"perp market {market_index} has no account on this venue")
            return MarketSnapshot(entry.slot, entry.unix_ts, self._clock.slot_ms, entry.value)

        return self._want({key: market_index}, fresh_after, answer)

    def _users(self, authorities: tuple[UserKey, ...], fresh_after: float) -> Any:
        fresh_after = max(fresh_after, time.monotonic() - self._user_ttl_s)
        return self._want_users(authorities, fresh_after, self._users_answer)

    def _want_users(self, authorities: tuple[UserKey, ...], fresh_after: float,
                    answer: Any) -> Any:
        keys = {}
        for authority, sub_account_id in authorities:
            key = self._user_key(authority, sub_account_id)
            self._parsers[key] = "user"
            keys[key] = (authority, sub_account_id)
        return self._want(keys, fresh_after, answer)

    def _users_answer(self, entries: dict[Any, _Entry]) -> UsersRead:
        """The entries are keyed by (authority, sub-account id), as the want named them."""
        return UsersRead({name: entry.value for name, entry in entries.items()},
                         min((e.slot for e in entries.values()), default=self._clock.slot))

    def _user_key(self, authority: Pubkey, sub_account_id: int) -> Pubkey:
        return user_account_key(self._profile.program_id, authority, sub_account_id)

    # --- the batcher ---------------------------------------------------------------------------

    def _want(self, keys: dict[Pubkey, Any], fresh_after: float, answer: Any) -> Any:
        """Answer from the cache, or register the want and schedule what it misses."""
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        want = _Want(keys, fresh_after, future, answer)
        if keys and self._satisfy(want):
            return future.get()
        self._add(want)
        missing = [k for k in keys if not self._fresh(k, fresh_after)]
        for key in missing:
            if not any(f.started >= fresh_after and key in f.keys for f in self._flights):
                self._to_read[key] = max(self._to_read.get(key, 0.0), fresh_after)
        if not keys and not self._flights:
            self._to_read.setdefault(CLOCK_SYSVAR, fresh_after)
        self._pump()
        return Pending(future) if answer is not None else None

    def _fresh(self, key: Pubkey, fresh_after: float) -> bool:
        entry = self._cache.get(key)
        return entry is not None and entry.started >= max(fresh_after,
                                                          self._floor.get(key, 0.0))

    def _satisfy(self, want: _Want) -> bool:
        """Answer `want` if the cache holds all it needs; True when it is done."""
        if not all(self._fresh(k, want.fresh_after) for k in want.keys):
            return False
        if want.answer is None:
            want.future.set(None)
            return True
        try:
            value = want.answer({name: self._cache[k] for k, name in want.keys.items()})
        except Exception as exc:
            want.future.set_exception((type(exc), exc, exc.__traceback__))
            return True
        want.future.set(value)
        return True

    def _pump(self) -> None:
        if time.monotonic() < self._held_until:
            return  # the provider is rate-limiting us: a _Resume comes when the pause ends
        while self._to_read and len(self._flights) < READS_IN_FLIGHT:
            keys = [k for k in list(self._to_read) if k != CLOCK_SYSVAR][:KEYS_PER_READ]
            for key in keys:
                del self._to_read[key]
            self._to_read.pop(CLOCK_SYSVAR, None)
            flight = _Flight(time.monotonic(), frozenset(keys))
            self._flights.append(flight)
            self.run_in_background(
                functools.partial(self._executor.accounts, (CLOCK_SYSVAR, *flight.keys)),
                then=functools.partial(_Read, flight))

    def _read_done(self, read: _Read) -> None:
        self._flights.remove(read.flight)
        if isinstance(read.outcome.error, RpcRateLimited):
            # still refused after the client's own backoff: the reads wait (within their
            # askers' timeouts) and go again after a pause, rather than fail
            for key in read.flight.keys:
                self._to_read.setdefault(key, 0.0)
            self._to_read.setdefault(CLOCK_SYSVAR, 0.0)
            if self._held_until <= time.monotonic():
                self._held_until = time.monotonic() + RATE_LIMITED_PAUSE_S
                self.send_later(RATE_LIMITED_PAUSE_S, _Resume())
            log.warning("venue reads rate-limited; trying again in %.1f s", RATE_LIMITED_PAUSE_S)
            return
        if read.outcome.error is not None:
            self._clock.refreshing = False
            error = read.outcome.error
            for want in [*self._naming(read.flight.keys), *self._clock_wants]:
                self._drop(want)
                want.future.set_exception((type(error), error, error.__traceback__))
            log.warning("venue read failed: %s", type(error).__name__)
            self._pump()
            return
        slot, accounts = read.outcome.value
        clock, *values = accounts
        chain = read_clock(clock.data) if clock is not None else None
        # the node answered somewhere between send and receipt: take the middle
        self._tick(chain.slot if chain else slot, chain.unix_timestamp if chain else None,
                   (read.flight.started + time.monotonic()) / 2)
        for key, account in zip(read.flight.keys, values, strict=True):
            self._store(key, read.flight.started, slot, account)
        self._settle_wants(read.flight.keys)

    def _store(self, key: Pubkey, started: float, slot: int, account: Any) -> None:
        if started < self._floor.get(key, 0.0):
            return  # read before an order for this account left: stale already
        value: Any
        try:
            if account is None:
                value = None
            elif self._parsers.get(key) == "market":
                value = read_perp_market(self._profile.program_id, account.data)
            elif self._parsers.get(key) == "raw":
                value = account
            else:
                value = read_user(account.data)
        except ValueError as exc:
            log.error("venue account %s is not what was expected: %s", key, exc)
            value = None
        current = self._cache.get(key)
        if current is None or current.started <= started:
            self._cache[key] = _Entry(started, slot, self._clock.unix_ts, value)

    def _tick(self, slot: int, unix_ts: int | None, started: float) -> None:
        self._clock.tick(slot, unix_ts, started)
        self._published.reading = self._clock.reading()

    def _add(self, want: _Want) -> None:
        if not want.keys:
            self._clock_wants.append(want)
        for key in want.keys:
            self._waiting.setdefault(key, {})[id(want)] = want

    def _drop(self, want: _Want) -> None:
        if not want.keys:
            self._clock_wants.remove(want)
        for key in want.keys:
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.pop(id(want), None)
                if not waiting:
                    del self._waiting[key]

    def _naming(self, keys: frozenset[Pubkey]) -> list[_Want]:
        """The wants that name any of `keys` (each once)."""
        found: dict[int, _Want] = {}
        for key in keys:
            found.update(self._waiting.get(key, {}))
        return list(found.values())

    def _settle_wants(self, keys: frozenset[Pubkey]) -> None:
        """Answer what the accounts `keys` (just stored) and the clock complete. Only the wants
        naming one of them can have changed: with hundreds of copies waiting for their
        accounts, a read settles its own askers, not every asker again."""
        if self._clock.at:
            for want in list(self._clock_wants):
                self._drop(want)
                want.future.set(None if want.answer is None else want.answer({}))
        left = []
        for want in self._naming(keys):
            if self._satisfy(want):
                self._drop(want)
            else:
                left.append(want)
        # a key whose read started before a newer Sending/fresh_after wants another read
        for want in left:
            for key in want.keys:
                covered = any(f.started >= want.fresh_after and key in f.keys
                              for f in self._flights)
                if not self._fresh(key, want.fresh_after) and not covered:
                    self._to_read[key] = max(self._to_read.get(key, 0.0), want.fresh_after)
        self._pump()

    def _observed(self, seen: Observed) -> None:
        self._tick(seen.slot, seen.unix_ts, seen.started)
        for (authority, sub_account_id), user in seen.users.items():
            key = self._user_key(authority, sub_account_id)
            current = self._cache.get(key)
            if seen.started >= self._floor.get(key, 0.0) and (
                    current is None or current.started <= seen.started):
                self._cache[key] = _Entry(seen.started, seen.slot, self._clock.unix_ts, user)
        self._settle_wants(frozenset(self._user_key(authority, sub_account_id)
                                     for authority, sub_account_id in seen.users))


class VenueStateClient(NamedActor):
    """How actors reach VenueState."""

    def __init__(self, services: Services, timeout_s: float = 10.0) -> None:
        super().__init__(services, "venue_state", timeout_s)

    def now(self) -> ChainTime:
        """The chain's slot and unix time, extrapolated from the published reading while it
        is fresh; otherwise asked (which refreshes it)."""
        reading = self._services.clock.reading
        if reading is not None and time.monotonic() - reading.at <= CLOCK_REFRESH_S:
            return reading.chain_time()
        return self.ask(Now())

    def snapshot(self, market_index: int) -> MarketSnapshot:
        """The market as read within the current slot."""
        return self.ask(SnapshotOf(market_index))

    def user(self, authority: Pubkey, sub_account_id: int,
             fresh_after: float = 0.0) -> UserSnapshot | None:
        """One User account read after `fresh_after` (batched with everyone else's asks)."""
        read: UsersRead = self.ask(UsersOf(((authority, sub_account_id),), fresh_after))
        return read.users[(authority, sub_account_id)]

    def raw_accounts(self, keys: tuple[Pubkey, ...],
                     fresh_after: float = 0.0) -> dict[Pubkey, AccountData | None]:
        """Accounts as the node returns them, read after `fresh_after` (batched)."""
        return self.ask(RawAccountsOf(keys, fresh_after))
