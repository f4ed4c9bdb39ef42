"""FillTracker: follows every published Swift order of the process with one batched read a slot.

Swift says only that an order was published; whether it was placed and filled is in the
taker's User account. Following each order with its own polling loop costs RPC calls per order
per poll, so one owner follows them all: each slot it reads the User accounts of every order
still open (getMultipleAccounts, 99 keys plus the Clock sysvar per call) and decides each
order from that read alone:

- filled: the position moved by the whole order;
- still able to trade: an open order of the same market and direction is in the account and the
  chain's unix time is not past the order's signed `max_ts` (the program refuses to fill it
  after that), or the chain has not yet passed `max_slot` (it may still be placed);
- otherwise it can no longer trade: `partial` when the position moved, `expired` when not.

So an order is never declared dead before it can no longer trade (no double fill after a
fallback), and is declared within a slot or two after that. The reads are shared with
VenueState (`Observed`), so the account a bot sizes its next signal from is the one that told it
its last order filled. Reads that fail leave every order open until its deadline (`unknown`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

import pykka
from solders.pubkey import Pubkey

from actors.legacy_executor import ExecutorClient
from actors.messages import Observed, Track, TrackedOrder, TrackResult, TrackState
from actors.venue_state import KEYS_PER_READ, VenueStateClient, user_account_key
from supervision import Outcome, Pending, SupervisedActor
from venue.clock_sysvar import CLOCK_SYSVAR, read_clock
from venue.positions import UserSnapshot, fill_from_delta, read_user
from venue.profiles import VenueProfile

log = logging.getLogger(__name__)


@dataclass
class _Open:
    order: TrackedOrder
    future: pykka.Future[Any]
    order_id: int | None = None


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _TickRead:
    started: float
    outcome: Outcome


class FillTracker(SupervisedActor):
    """Owns the set of open Swift orders; decides them from one batched read per slot."""

    def __init__(self, executor: ExecutorClient, venue: VenueStateClient,
                 profile: VenueProfile) -> None:
        super().__init__()
        self._executor = executor
        self._venue = venue
        self._profile = profile
        self._open: list[_Open] = []
        self._ticking = False
        self._last: dict[tuple[Pubkey, int], tuple[bytes, UserSnapshot]] = {}  # by _read

    def on_exit(self) -> None:
        # whoever waits on an order here learns at once that it must ask the restarted tracker
        error = pykka.ActorDeadError("fill tracker restarted")
        for item in self._open:
            with contextlib.suppress(queue.Full):  # one already decided keeps its answer
                item.future.set_exception((type(error), error, None))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Track):
            return self._follow(message.order)
        if isinstance(message, _Tick):
            return self._tick()
        if isinstance(message, _TickRead):
            return self._decide(message)
        return super().on_receive(message)

    def _follow(self, order: TrackedOrder) -> Pending:
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        self._open.append(_Open(order, future))
        if not self._ticking:
            self._ticking = True
            self.send_later(self._slot_s(), _Tick())
        return Pending(future)

    def _slot_s(self) -> float:
        try:
            return self._venue.now().slot_ms / 1000
        except Exception:  # the clock is only a pace here; the profile's slot will do
            return self._profile.slot_time_ms / 1000

    def _tick(self) -> None:
        if not self._open:
            self._ticking = False
            return
        owners = sorted({(o.order.authority, o.order.sub_account_id) for o in self._open},
                        key=lambda k: (bytes(k[0]), k[1]))
        started = time.monotonic()
        self.run_in_background(lambda: self._read(owners),
                               then=lambda outcome: _TickRead(started, outcome))

    def _read(self, owners: list[tuple[Pubkey, int]]
              ) -> tuple[int, int | None, dict[tuple[Pubkey, int], UserSnapshot | None]]:
        """The owners' User accounts, KEYS_PER_READ at a time, with the chain's clock."""
        pid = self._profile.program_id
        users: dict[tuple[Pubkey, int], UserSnapshot | None] = {}
        slots, unix_ts = [], None
        for start in range(0, len(owners), KEYS_PER_READ):
            chunk = owners[start:start + KEYS_PER_READ]
            keys = tuple(user_account_key(pid, a, s) for a, s in chunk)
            slot, (clock, *accounts) = self._executor.accounts((CLOCK_SYSVAR, *keys))
            if clock is not None:
                chain = read_clock(clock.data)
                slot, unix_ts = chain.slot, chain.unix_timestamp
            slots.append(slot)
            for owner, account in zip(chunk, accounts, strict=True):
                users[owner] = self._decoded(owner, account.data) if account is not None \
                    else None
        self._last = {o: self._last[o] for o in owners if o in self._last}
        return min(slots), unix_ts, users

    def _decoded(self, owner: tuple[Pubkey, int], data: bytes) -> UserSnapshot:
        """The account as decoded, once per change: an order waiting in its auction leaves
        its account as it was from one slot to the next."""
        last = self._last.get(owner)
        if last is None or last[0] != data:
            last = self._last[owner] = (data, read_user(data))
        return last[1]

    def _decide(self, read: _TickRead) -> None:
        users: dict[tuple[Pubkey, int], UserSnapshot | None] = {}
        slot, unix_ts = 0, None
        if read.outcome.error is not None:  # nothing seen: no order is decided by this read
            log.warning("fill tracking read failed: %s", type(read.outcome.error).__name__)
        else:
            slot, unix_ts, users = read.outcome.value
            self._venue.tell(Observed(read.started, slot, unix_ts, users))
        still_open = []
        for item in self._open:
            owner = (item.order.authority, item.order.sub_account_id)
            # an order tracked after this read was sent is not in it: only a later read can
            # say anything about it (its absence here says nothing)
            seen = owner in users
            user = users[owner] if seen else None
            result = _decision(item, user, slot, unix_ts) if seen else None
            if result is None and time.monotonic() >= item.order.deadline:
                result = TrackResult(TrackState.UNKNOWN, slot=slot, user_after=user)
            if result is None:
                still_open.append(item)
            else:
                item.future.set(result)
        self._open = still_open
        # the next read one slot after this one was sent, not after it came back
        self.send_later(max(0.0, read.started + self._slot_s() - time.monotonic()), _Tick())


def _decision(item: _Open, user: UserSnapshot | None, slot: int,
              unix_ts: int | None) -> TrackResult | None:
    """The order's outcome from one read, or None while it may still trade."""
    order = item.order
    if user is None:
        return TrackResult(TrackState.EXPIRED, slot=slot) if slot > order.max_slot else None
    fill = fill_from_delta(order.position_before, user.perp(order.market_index))
    filled = min(abs(fill.base_filled), order.base_amount)
    live = [o for o in user.orders.values()
            if o.status == "Open" and o.market_index == order.market_index
            and o.direction == order.direction]
    if live and item.order_id is None:
        item.order_id = max(o.order_id for o in live)
    if filled >= order.base_amount:
        return TrackResult(TrackState.FILLED, filled, fill.avg_price, item.order_id, slot, user)
    may_fill = bool(live) and (unix_ts is None or unix_ts <= order.max_ts)
    if may_fill or slot <= order.max_slot:
        return None
    if filled > 0:
        return TrackResult(TrackState.PARTIAL, filled, fill.avg_price, item.order_id, slot, user)
    return TrackResult(TrackState.EXPIRED, 0, None, item.order_id, slot, user)
