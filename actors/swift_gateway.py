"""SwiftGateway: owns Swift health and the submission budget; sends orders and reports outcomes.

Health is fed by the health monitor's /health probes and by POST outcomes, counted apart:
`failures_unhealthy` consecutive failed probes, or as many consecutive POSTs the service failed
(no answer, 429, 5xx), mark Swift unhealthy. An accepted order clears the order count; a good
probe clears the probe count, and the order count too once `recovery_s` has passed since the
last failed POST (a /health that answers while /orders fails must not make us retry Swift on
every signal). Order rejections (bad size, collateral) say nothing about the service.

What is bounded is work on the wire: at most `max_in_flight` POSTs at once, and a token bucket
(`rate_per_s`, `burst`) for the rate the venue's edge allows. An order over budget waits in
line, in arrival order, for as long as its auction window lasts, then is answered `not_sent`
(nothing left us: a fallback is safe). Health is checked when an order reaches the wire, so
orders queued behind failures go straight to their fallback once Swift is marked unhealthy.

Orders are signed against the market snapshot they were sized from (one slot and oracle for
every copy of a signal) with `max_ts` at the auction's end, so a placed order that did not fill
in its auction dies on the venue instead of lingering. An order signed after its snapshot's slot
(the tail of a long fan-out, an order that waited for budget) keeps that slot and oracle: its
auction is lengthened by the snapshot's age (`auction_slots_for`), so it still has the
configured auction from the moment it leaves (the program places an order only while slot +
auction duration is not behind the chain, and prices it along the auction from its signed
slot: a late copy joins the signal's price path where it stands, with the same end price).
Only a snapshot older than a u8 auction can reach (~100 s at 400 ms slots) is re-signed at the
current slot before anything leaves. The statement that records an order as
submitted, right before its POST, is the send's fence: it marks nothing unless the order's
daemon still holds the bot's lease at the order's epoch, and then the order is not POSTed and
its bot is answered LeaseLost. After the POST, an accepted order (or one whose answer was lost:
it may have been published) goes to the FillTracker, which reports filled, partial, expired (it
can no longer trade) or unknown; only then may the caller fall back.

Counting (observability.trading_metrics says what each metric means): an order is counted in
`swift_orders` when it is handed to the gateway, sent or not; its end in `swift_orders_success`,
or, when Swift failed it (`trading_metrics.is_swift_failure`: no answer, 429, 5xx, refused as
malformed, a gateway error), in `swift_orders_failed`; every order that did not trade in
`swift_errors_by_type`. Every event of a sent order is a row of swift_order_logs (submitted,
accepted or failed, placed, filled, expired, unknown) with the taxonomy's code in `error_code`;
a row that cannot be written is counted in `swift_audit_log_failures`. Under a fan-out the
fences and the audit rows are written in batches (`_Coalesced`: the orders that reach that step
while the previous statement is in flight go in the next one, each fenced on its own), and each
order waits for its own statement, so nothing leaves before its mark and no caller is answered
before its order's rows are written.

SignedMsgUserOrders: without that account the venue accepts Swift orders and never places them.
`HasSignedMsgOrders` answers from a per-authority cache (an account that exists is remembered
for good, a missing one is looked at again after SIGNED_MSG_RECHECK_S), filled by a batched read
through VenueState; bots then route an authority without it on-chain.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import gevent
import pykka
from gevent.event import AsyncResult
from solders.pubkey import Pubkey

from actors.messages import (
    HasSignedMsgOrders,
    IsHealthy,
    PlacementOf,
    Submit,
    SwiftOrder,
    SwiftProbe,
    SwiftResult,
    Track,
    TrackedOrder,
    TrackResult,
)
from actors.services import NamedActor
from actors.venue_state import VenueStateClient
from observability.trading_metrics import (
    INTERNAL_ERROR,
    PRICE_IMPROVEMENT_MEANS,
    SWIFT_API_LATENCY,
    SWIFT_AUCTION_DURATION,
    SWIFT_AUDIT_LOG_FAILURES,
    SWIFT_AVG_FILL_TIME_BY_MARKET,
    SWIFT_ERRORS_BY_TYPE,
    SWIFT_HEALTHY,
    SWIFT_ORDERS,
    SWIFT_ORDERS_BY_MARKET,
    SWIFT_ORDERS_FAILED,
    SWIFT_ORDERS_SUCCESS,
    SWIFT_PRICE_IMPROVEMENT,
    SWIFT_SUCCESS_RATE_BY_MARKET,
    is_swift_failure,
)
from storage.bot_leases import LeaseLost
from storage.database import Database
from storage.trades import SwiftEvent, SwiftMark, log_swift_events, mark_swift_submitted_many
from supervision import Outcome, Pending, SupervisedActor
from venue.auction import LONG, AuctionConfig
from venue.profiles import VenueProfile
from venue.rpc_client import AllRpcDown, RpcError, RpcTransportError
from venue.signed_msg_user_orders import signed_msg_user_orders_address
from venue.snapshot import ChainTime, MarketSnapshot
from venue.swift_client import SubmitResult, SwiftClient
from venue.swift_errors import SwiftOutcome
from venue.swift_message import SignedOrder, build_message, market_order, sign_order

log = logging.getLogger(__name__)

MAX_AUCTION_SLOTS = 255  # auction_duration is a u8 of the signed message
SIGNED_MSG_FRESH_S = 30.0  # whether the account exists: a read this recent (a fan-out's) will do
SIGNED_MSG_RECHECK_S = 60.0  # an authority found without SignedMsgUserOrders is read again after
MOST_PER_STATEMENT = 200  # fences or audit rows written in one statement, at most

T = TypeVar("T")
R = TypeVar("R")


def auction_slots_for(snapshot: MarketSnapshot, now: ChainTime, auction_slots: int) -> int | None:
    """The auction an order signed now at this snapshot's slot carries, so that it still has
    `auction_slots` to be placed and to trade: the snapshot's age plus those (the program
    silently drops an order whose slot + auction duration is behind the chain, and prices it
    along the auction from its signed slot); None once that no longer fits the message's u8
    (the server's own limit, a slot 500 behind, lies further)."""
    duration = snapshot.slots_behind(now) + auction_slots
    return duration if duration <= MAX_AUCTION_SLOTS else None


class _Coalesced(Generic[T, R]):
    """One statement for every caller that arrives while the previous one is in flight
    (DataLoader-style): a caller alone when the gateway is idle, batches under a fan-out, and
    no timer. Each caller waits for the statement its item went in and gets that statement's
    answer for it, or its error."""

    def __init__(self, run: Callable[[list[T]], list[R]]) -> None:
        self._run = run
        self._waiting: list[tuple[T, AsyncResult]] = []
        self._running = False

    def __call__(self, item: T) -> R:
        done = AsyncResult()
        self._waiting.append((item, done))
        if not self._running:
            self._running = True
            gevent.spawn(self._drain)
        return done.get()

    def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MOST_PER_STATEMENT]
                del self._waiting[:MOST_PER_STATEMENT]
                try:
                    answers = self._run([item for item, _ in batch])
                except BaseException as exc:
                    for _, done in batch:
                        done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, done), answer in zip(batch, answers, strict=True):
                    done.set(answer)
        finally:
            self._running = False


@dataclass
class _Queued:
    order: SwiftOrder
    wait_s: float
    future: pykka.Future[Any]
    window_s: float  # how long it may wait for budget: its auction window
    give_up_at: float | None = None  # set when it first finds no budget (not for the wire)


@dataclass(frozen=True)
class _Mark:
    """The fence of one POST: its trade's mark, and the lease it is sent under."""

    mark: SwiftMark
    holder: str | None
    epoch: int | None


@dataclass(frozen=True)
class _Posted:
    """A POST came back (or its answer was lost)."""

    uuid: str
    max_slot: int
    max_ts: int
    sent_at: float
    submitted: SubmitResult


@dataclass(frozen=True)
class _PostDone:
    item: _Queued
    outcome: Outcome


@dataclass(frozen=True)
class _Finished:
    item: _Queued
    outcome: Outcome
    failure: str | None = None  # why Swift failed the order, if it did (unless it traded)


@dataclass(frozen=True)
class _Refill:
    pass


@dataclass(frozen=True)
class _SignedMsgRead:
    authority: Pubkey
    outcome: Outcome


class SwiftGateway(SupervisedActor):
    """Owns Swift health and budget; POSTs off its mailbox, hands orders to the FillTracker."""

    def __init__(self, client: SwiftClient, venue: VenueStateClient, tracker: NamedActor,
                 db: Database, auction: AuctionConfig, failures_unhealthy: int = 3,
                 rate_per_s: float = 100.0, burst: int = 600, max_in_flight: int = 64,
                 recovery_s: float = 30.0, profile: VenueProfile | None = None) -> None:
        super().__init__()
        self._profile = profile  # None: the SignedMsgUserOrders check is off
        self._signed_msg_known: set[Pubkey] = set()
        self._signed_msg_missing: dict[Pubkey, float] = {}  # authority -> when found missing
        self._signed_msg_waiting: dict[Pubkey, list[pykka.Future[Any]]] = {}
        self._client = client
        self._venue = venue
        self._tracker = tracker
        self._db = db
        self._marks: _Coalesced[_Mark, Exception | None] = _Coalesced(self._mark)
        self._events: _Coalesced[SwiftEvent, None] = _Coalesced(self._write_events)
        self._auction = auction
        self._failures_unhealthy = failures_unhealthy
        self._probe_failures = 0
        self._order_failures = 0
        self._last_order_failure = 0.0
        self._recovery_s = recovery_s
        self._healthy = True
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self._refill_due = False
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._queue: deque[_Queued] = deque()
        self._submitted: dict[str, int] = defaultdict(int)
        self._filled: dict[str, int] = defaultdict(int)
        self._fill_ms_total: dict[str, float] = defaultdict(float)

    def on_start(self) -> None:
        SWIFT_HEALTHY.set(1)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Submit):
            return self._submit(message)
        if isinstance(message, IsHealthy):
            return self._healthy
        if isinstance(message, HasSignedMsgOrders):
            return self._has_signed_msg_orders(message.authority)
        if isinstance(message, _SignedMsgRead):
            return self._signed_msg_read(message)
        if isinstance(message, PlacementOf):
            return self.answer_later(lambda: self._client.hash_status_by_key(message.hash_key))
        if isinstance(message, SwiftProbe):
            return self._probed(message.healthy)
        if isinstance(message, _PostDone):
            return self._post_done(message)
        if isinstance(message, _Finished):
            return self._finished(message)
        if isinstance(message, _Refill):
            self._refill_due = False
            return self._pump()
        return super().on_receive(message)

    # --- health and budget ---------------------------------------------------------------------

    def _probed(self, ok: bool) -> None:
        if ok:
            self._probe_failures = 0
            if time.monotonic() - self._last_order_failure >= self._recovery_s:
                self._order_failures = 0
        else:
            self._probe_failures += 1
        self._update_health("probe")

    def _order_outcome(self, service_failure: bool) -> None:
        if service_failure:
            self._order_failures += 1
            self._last_order_failure = time.monotonic()
        else:
            self._order_failures = 0
        self._update_health("order")

    def _update_health(self, source: str) -> None:
        healthy = max(self._probe_failures, self._order_failures) < self._failures_unhealthy
        if healthy != self._healthy:
            log.log(logging.INFO if healthy else logging.WARNING, "Swift %s (%s: probes %d,"
                    " orders %d consecutive failures)", "healthy again" if healthy else
                    "marked unhealthy", source, self._probe_failures, self._order_failures)
        self._healthy = healthy
        SWIFT_HEALTHY.set(1 if healthy else 0)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    # --- SignedMsgUserOrders ---------------------------------------------------------------------

    def _has_signed_msg_orders(self, authority: Pubkey) -> Any:
        if self._profile is None or authority in self._signed_msg_known:
            return True
        missing_at = self._signed_msg_missing.get(authority)
        if missing_at is not None and time.monotonic() - missing_at < SIGNED_MSG_RECHECK_S:
            return False
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        waiting = self._signed_msg_waiting.setdefault(authority, [])
        waiting.append(future)
        if len(waiting) == 1:  # one read per authority, however many ask meanwhile
            profile = self._profile
            key = signed_msg_user_orders_address(profile, authority)
            self.run_in_background(
                lambda: self._venue.raw_accounts(
                    (key,), time.monotonic() - SIGNED_MSG_FRESH_S)[key],
                then=lambda outcome: _SignedMsgRead(authority, outcome))
        return Pending(future)

    def _signed_msg_read(self, read: _SignedMsgRead) -> None:
        waiting = self._signed_msg_waiting.pop(read.authority, [])
        if read.outcome.error is not None:  # unknown: the order is not held back from Swift
            log.warning("SignedMsgUserOrders of %s not read: %s", read.authority,
                        type(read.outcome.error).__name__)
            answer = True
        else:
            account = read.outcome.value
            assert self._profile is not None
            answer = account is not None and account.owner == self._profile.program_id
            if answer:
                self._signed_msg_known.add(read.authority)
                self._signed_msg_missing.pop(read.authority, None)
            else:
                self._signed_msg_missing[read.authority] = time.monotonic()
                log.warning("authority %s has no SignedMsgUserOrders account: its orders go"
                            " on-chain (`quantumvault wallet init-orders`)", read.authority)
        for future in waiting:
            future.set(answer)

    # --- submission ----------------------------------------------------------------------------

    def _submit(self, submit: Submit) -> Any:
        if submit.order.attempt > 0 and not self._healthy:
            # a Swift retry is sent only while Swift is healthy: else it is no Swift order
            # at all, and the caller falls back on the refusal it already has
            return SwiftResult("not_sent", "swift_unhealthy")
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        market = submit.order.market
        self._submitted[market] += 1  # a Swift order, whether or not it reaches the wire
        SWIFT_ORDERS.labels(market=market).inc()
        SWIFT_ORDERS_BY_MARKET.labels(market=market).inc()
        window_s = self._auction.duration_slots * submit.order.snapshot.slot_ms / 1000
        self._queue.append(_Queued(submit.order, submit.wait_s, future, window_s))
        self._pump()
        return Pending(future)

    def _pump(self) -> None:
        """Put queued orders on the wire while the in-flight bound and the budget allow."""
        while self._queue and self._in_flight < self._max_in_flight:
            item = self._queue[0]
            if not self._healthy:
                self._queue.popleft()
                item.future.set(SwiftResult("not_sent", "swift_unhealthy"))
                continue
            if item.give_up_at is not None and time.monotonic() > item.give_up_at:
                self._queue.popleft()
                item.future.set(SwiftResult("not_sent", "rate_budget"))
                continue
            if not self._take_token():
                # waiting for the wire is ours to bound; waiting for budget only as long as
                # the order's auction would last
                if item.give_up_at is None:
                    item.give_up_at = time.monotonic() + item.window_s
                if not self._refill_due:
                    self._refill_due = True
                    self.send_later((1 - self._tokens) / self._rate, _Refill())
                return
            self._queue.popleft()
            self._in_flight += 1
            self.run_in_background(functools.partial(self._post, item),
                                   then=functools.partial(_PostDone, item))

    def _signed(self, order: SwiftOrder) -> tuple[SignedOrder, str, int, int, int]:
        """The signed message, its uuid, slot, max_slot and max_ts (the auction's end)."""
        snap = order.snapshot
        duration = auction_slots_for(snap, self._venue.now(), self._auction.duration_slots)
        if duration is None:
            # older than a signed auction can reach: price and sign it against the market as
            # it is now (one read per market per slot, shared), or at least at the current
            # slot when the venue cannot be read
            try:
                snap = self._venue.snapshot(order.market_index)
            except (RpcError, RpcTransportError, AllRpcDown, pykka.Timeout, ValueError):
                now = self._venue.now()
                snap = dataclasses.replace(snap, slot=now.slot, unix_ts=now.unix_ts)
            duration = self._auction.duration_slots
        slot, unix_ts = snap.slot, snap.unix_ts
        max_ts = unix_ts + max_ts_offset_s(duration, snap.slot_ms)
        spec = dataclasses.replace(market_order(
            direction=order.direction, base_asset_amount=order.base_amount,
            market_index=order.market_index, oracle_price=snap.market.oracle_price,
            auction=dataclasses.replace(self._auction, duration_slots=duration),
            reduce_only=order.reduce_only), max_ts=max_ts)
        message = build_message(spec, slot, slot_offset=0, sub_account_id=order.sub_account_id,
                                uuid=uuid_for(order.trade_id, order.attempt))
        return (sign_order(order.signer, message), message.uuid.decode("ascii"), slot,
                slot + duration, max_ts)

    def _mark(self, marks: list[_Mark]) -> list[Exception | None]:
        """One batch of send fences: a statement per lease epoch among them; per mark, None
        (marked: its order may leave), the LeaseLost that fenced it, or the error that kept
        its statement from being written (its order does not leave either)."""
        answers: list[Exception | None] = [None] * len(marks)
        epochs: dict[tuple[str | None, int | None], list[int]] = defaultdict(list)
        for i, mark in enumerate(marks):
            epochs[(mark.holder, mark.epoch)].append(i)
        for (holder, epoch), where in epochs.items():
            try:
                refused: list[Exception | None] = [*mark_swift_submitted_many(
                    self._db, [marks[i].mark for i in where], holder=holder, epoch=epoch)]
            except Exception as exc:
                refused = [exc] * len(where)
            for i, answer in zip(where, refused, strict=True):
                answers[i] = answer
        return answers

    def _write_events(self, events: list[SwiftEvent]) -> list[None]:
        """One batch of audit rows, in one statement."""
        log_swift_events(self._db, events)
        return [None] * len(events)

    def _post(self, item: _Queued) -> _Posted:
        """Sign, record, POST (background greenlet)."""
        order = item.order
        signed, uuid, slot, max_slot, max_ts = self._signed(order)
        request = {"market_index": order.market_index, "direction": order.direction,
                   "base_amount": order.base_amount, "reduce_only": order.reduce_only,
                   "slot": slot, "max_slot": max_slot,
                   "max_ts": max_ts, "message": signed.message_hex,
                   "hash_key": signed.hash_status_key}
        refused = self._marks(_Mark(SwiftMark(order.trade_id, uuid, request), order.holder,
                                    order.epoch))
        if isinstance(refused, LeaseLost):  # fenced: nothing leaves, and the asking bot hears it
            raise refused
        if refused is not None:  # nothing left: the caller learns it as a gateway error
            SWIFT_AUDIT_LOG_FAILURES.labels(event="submitted").inc()
            raise refused
        log.info("swift order submitted", extra=_context(order, uuid))
        sent_at = time.monotonic()
        submitted = self._client.submit(signed.body)
        SWIFT_API_LATENCY.observe(submitted.latency_ms)
        return _Posted(uuid, max_slot, max_ts, sent_at, submitted)

    def _post_done(self, done: _PostDone) -> None:
        self._in_flight -= 1
        item = done.item
        if isinstance(done.outcome.error, LeaseLost):
            self._lease_lost(item, done.outcome.error)
            return
        if done.outcome.error is not None:
            # `_post` fails only before the POST (the client never raises): nothing left us,
            # so a fallback is safe
            error = done.outcome.error
            log.error("swift submission failed before the POST: %s", type(error).__name__,
                      extra=_context(item.order, None))
            not_sent = Outcome(value=SwiftResult("not_sent",
                                                 f"gateway_error: {type(error).__name__}"))
            uuid = uuid_for(item.order.trade_id, item.order.attempt)
            if uuid is not None:  # the audit trail says so too (if the database lets it)
                self.run_in_background(
                    lambda: self._log(item.order, uuid.decode("ascii"), "failed",
                                      error_code=INTERNAL_ERROR,
                                      error_message=type(error).__name__),
                    then=lambda _o: _Finished(item, not_sent, INTERNAL_ERROR))
            else:
                self._finished(_Finished(item, not_sent, INTERNAL_ERROR))
            self._pump()
            return
        posted: _Posted = done.outcome.value
        outcome = posted.submitted.outcome
        self._order_outcome(_service_failure(outcome))
        # Swift failed the order unless it accepted it or refused it for the user's account
        failure = None if outcome.accepted or not is_swift_failure(outcome.reason) \
            else outcome.reason
        if not outcome.accepted and not outcome.maybe_published:
            result = SwiftResult("rejected", outcome.reason, outcome.kind.value,
                                 swift_order_id=posted.uuid,
                                 api_latency_ms=posted.submitted.latency_ms,
                                 service_failure=_service_failure(outcome))
            self.run_in_background(lambda: self._log(item.order, posted.uuid, "failed",
                                                     response=_answer(outcome),
                                                     error_code=outcome.reason,
                                                     error_message=outcome.detail or None,
                                                     latency_ms=int(posted.submitted.latency_ms)),
                                   then=lambda _o: _Finished(item, Outcome(value=result),
                                                             failure))
        else:
            self.run_in_background(lambda: self._follow(item, posted),
                                   then=lambda o: _Finished(item, o, failure))
        self._pump()

    def _lease_lost(self, item: _Queued, error: LeaseLost) -> None:
        """The send's fence refused the order: nothing left us, and the bot that asked gets
        LeaseLost (no fallback, no audit row: the bot's new holder reconciles the trade)."""
        log.warning("swift order not sent: %s", error, extra=_context(item.order, None))
        item.future.set_exception((type(error), error, error.__traceback__))
        self._pump()

    # --- following one published order (background greenlet) --------------------------------

    def _follow(self, item: _Queued, posted: _Posted) -> SwiftResult:
        order = item.order
        outcome = posted.submitted.outcome
        base: dict[str, Any] = {"swift_order_id": posted.uuid,
                                "api_latency_ms": posted.submitted.latency_ms,
                "service_failure": _service_failure(outcome)}
        self._log(order, posted.uuid, "accepted" if outcome.accepted else "failed",
                  response=_answer(outcome),
                  error_code=None if outcome.accepted else outcome.reason,
                  error_message=None if outcome.accepted else outcome.detail or None,
                  latency_ms=int(posted.submitted.latency_ms))
        deadline = posted.sent_at + item.wait_s
        tracked = TrackedOrder(order.authority, order.sub_account_id, order.market_index,
                               order.direction, order.base_amount, order.position_before,
                               posted.max_slot, posted.max_ts, deadline)
        while True:  # a tracker that crashed answers ActorDeadError: its successor follows it
            try:
                result: TrackResult = self._tracker.ask(
                    Track(tracked), max(1.0, deadline - time.monotonic()) + 5.0)
                break
            except pykka.ActorDeadError:
                if time.monotonic() >= deadline:
                    raise
                log.warning("fill tracker restarted; following the order again",
                            extra=_context(order, posted.uuid))
        fill_ms = int((time.monotonic() - posted.sent_at) * 1000)
        if result.state == "unknown":
            self._log(order, posted.uuid, "unknown", error_code="fill_unconfirmed",
                      error_message="the fill reads did not settle the order in time",
                      latency_ms=fill_ms)
            return SwiftResult("unknown", "fill_unconfirmed", order_id=result.order_id,
                               base_filled=result.base_filled, avg_price=result.avg_price,
                               **base)
        if result.state != "expired" or result.order_id is not None:
            # it traded or was seen open, so it was placed (the id when the read showed it)
            self._log(order, posted.uuid, "placed", response={"order_id": result.order_id},
                      latency_ms=fill_ms)
        if result.state == "expired":
            reason = "not_placed" if result.order_id is None else "not_filled"
            self._log(order, posted.uuid, "expired", error_code=reason,
                      response={"order_id": result.order_id, "slot": result.slot},
                      latency_ms=fill_ms)
            return SwiftResult("expired", reason, order_id=result.order_id,
                               user_after=result.user_after, **base)
        improvement = _improvement_bps(order.direction, order.snapshot.market.oracle_price,
                                       result.avg_price)
        SWIFT_AUCTION_DURATION.observe(fill_ms)
        if improvement is not None:
            SWIFT_PRICE_IMPROVEMENT.labels(market=order.market).observe(improvement)
            PRICE_IMPROVEMENT_MEANS.observe(order.market, improvement)
        self._log(order, posted.uuid, "filled", response={
            "order_id": result.order_id, "base_filled": result.base_filled,
            "avg_price": result.avg_price, "partial": result.state == "partial",
            "slot": result.slot, "price_improvement_bps": improvement}, latency_ms=fill_ms)
        return SwiftResult(result.state, None, order_id=result.order_id,
                           base_filled=result.base_filled, avg_price=result.avg_price,
                           fill_ms=fill_ms, price_improvement_bps=improvement,
                           user_after=result.user_after, **base)

    def _finished(self, done: _Finished) -> None:
        """Answer the caller and count how the order ended (each order once)."""
        market = done.item.order.market
        if done.outcome.error is not None:
            error = done.outcome.error
            SWIFT_ORDERS_FAILED.labels(reason=INTERNAL_ERROR).inc()
            SWIFT_ERRORS_BY_TYPE.labels(type="unknown", reason=INTERNAL_ERROR).inc()
            done.item.future.set(SwiftResult("unknown", f"no_answer: {type(error).__name__}"))
            return
        result: SwiftResult = done.outcome.value
        done.item.future.set(result)
        if result.state in ("filled", "partial"):
            self._filled[market] += 1
            SWIFT_ORDERS_SUCCESS.labels(market=market).inc()
            if result.fill_ms is not None:
                self._fill_ms_total[market] += result.fill_ms
                SWIFT_AVG_FILL_TIME_BY_MARKET.labels(market=market).set(
                    self._fill_ms_total[market] / self._filled[market])
        else:
            if done.failure is not None:
                SWIFT_ORDERS_FAILED.labels(reason=done.failure).inc()
            SWIFT_ERRORS_BY_TYPE.labels(type=result.kind or result.state,
                                        reason=result.reason or result.state).inc()
        SWIFT_SUCCESS_RATE_BY_MARKET.labels(market=market).set(
            self._filled[market] / max(1, self._submitted[market]))

    def _log(self, order: SwiftOrder, uuid: str, event: str, **fields: Any) -> None:
        """One swift_order_logs row; a row that cannot be written is logged and counted."""
        log.info("swift order %s", event, extra=_context(order, uuid))
        try:
            self._events(SwiftEvent(order.trade_id, uuid, event, **fields))
        except Exception:
            SWIFT_AUDIT_LOG_FAILURES.labels(event=event).inc()
            log.exception("could not record swift event %s", event, extra=_context(order, uuid))


def _context(order: SwiftOrder, uuid: str | None) -> dict[str, Any]:
    return {"swift_order_id": uuid, "signal_id": order.signal_id, "bot_id": order.bot_id}


def max_ts_offset_s(duration_slots: int, slot_ms: float) -> int:
    """Seconds from the signed slot's unix time to the order's `max_ts`: the last whole second
    that starts within the auction. The chain's clock (whole seconds) then passes `max_ts`
    within a second of the auction's last slot, so an order that did not fill is dead, and
    falls back, within about two slots of it, never while it can still trade."""
    return max(1, math.ceil(duration_slots * slot_ms / 1000) - 1)


def uuid_for(trade_id: str | None, attempt: int = 0) -> bytes | None:
    """The Swift uuid of a trade's order: derived from the trade id, so the same order sent
    twice is one order to the venue (it skips a repeated uuid); fresh when there is no trade.
    A Swift retry of a refused order (`attempt` > 0) is a new order and gets its own uuid."""
    if trade_id is None:
        return None
    seed = trade_id if attempt == 0 else f"{trade_id}#{attempt}"
    return hashlib.sha256(seed.encode()).hexdigest()[:8].encode("ascii")


def _answer(outcome: SwiftOutcome) -> dict[str, Any]:
    """What Swift answered, as recorded in swift_order_logs.response_payload."""
    return {"http_status": outcome.http_status, "reason": outcome.reason,
            "kind": outcome.kind.value, "maybe_published": outcome.maybe_published}


def _service_failure(outcome: SwiftOutcome) -> bool:
    """No answer, 429 or 5xx: the service is struggling (order rejections are not)."""
    if outcome.accepted:
        return False
    return outcome.http_status is None or outcome.http_status >= 500 or \
        outcome.http_status == 429


def _improvement_bps(direction: int, oracle: int, price: int | None) -> float | None:
    """Fill against the oracle in the trader's favour: positive is better than the oracle."""
    if price is None or oracle <= 0:
        return None
    diff = (oracle - price) if direction == LONG else (price - oracle)
    return diff * 10_000 / oracle
