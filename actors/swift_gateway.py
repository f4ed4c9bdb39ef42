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

An order that reaches the wire is signed (actors.swift_signing), fenced and audited
(actors.swift_records: a fenced order is not POSTed, and its bot is answered LeaseLost), POSTed,
then followed to its end (actors.swift_follow). `HasSignedMsgOrders` is answered from
actors.signed_msg_cache; bots route an authority without that account on-chain.

Counting (observability.trading_metrics says what each metric means): an order is counted in
`swift_orders` when it is handed to the gateway, sent or not; its end in `swift_orders_success`,
or, when Swift failed it (`trading_metrics.is_swift_failure`: no answer, 429, 5xx, refused as
malformed, a gateway error), in `swift_orders_failed`; every order that did not trade in
`swift_errors_by_type`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import pykka
from solders.pubkey import Pubkey

from actors.messages import (
    HasSignedMsgOrders,
    IsHealthy,
    PlacementOf,
    Submit,
    SwiftOrder,
    SwiftProbe,
    SwiftResult,
    SwiftState,
)
from actors.services import NamedActor
from actors.signed_msg_cache import SIGNED_MSG_FRESH_S, SignedMsgCache
from actors.swift_follow import Posted, follow, service_failure
from actors.swift_records import SwiftRecords, log_context
from actors.swift_signing import sign, uuid_for
from actors.venue_state import VenueStateClient
from observability.trading_metrics import (
    INTERNAL_ERROR,
    SWIFT_API_LATENCY,
    SWIFT_AUDIT_LOG_FAILURES,
    SWIFT_AVG_FILL_TIME_BY_MARKET,
    SWIFT_ERRORS_BY_TYPE,
    SWIFT_HEALTHY,
    SWIFT_ORDERS,
    SWIFT_ORDERS_BY_MARKET,
    SWIFT_ORDERS_FAILED,
    SWIFT_ORDERS_SUCCESS,
    SWIFT_SUCCESS_RATE_BY_MARKET,
    is_swift_failure,
)
from storage.bot_leases import LeaseLost
from storage.database import Database
from supervision import Outcome, Pending, SupervisedActor
from supervision.token_bucket import TokenBucket
from venue.auction import AuctionConfig
from venue.profiles import VenueProfile
from venue.swift_client import SwiftClient
from venue.swift_errors import SwiftOutcome

log = logging.getLogger(__name__)


@dataclass
class _Queued:
    order: SwiftOrder
    wait_s: float
    future: pykka.Future[Any]
    window_s: float  # how long it may wait for budget: its auction window
    queued_at: float
    give_up_at: float | None = None  # its window from queueing, once budget was short


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
        # None: the SignedMsgUserOrders check is off
        self._signed_msg = None if profile is None else SignedMsgCache(profile)
        self._client = client
        self._venue = venue
        self._tracker = tracker
        self._records = SwiftRecords(db)
        self._auction = auction
        self._failures_unhealthy = failures_unhealthy
        self._probe_failures = 0
        self._order_failures = 0
        self._last_order_failure = 0.0
        self._recovery_s = recovery_s
        self._healthy = True
        self._budget = TokenBucket(rate_per_s, burst)
        self._budget_short = False  # the last take found no token: the line waits for budget
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
            assert self._signed_msg is not None
            return self._signed_msg.read(message.authority, message.outcome)
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

    def _order_outcome(self, outcome: SwiftOutcome) -> None:
        if service_failure(outcome):
            self._order_failures += 1
            self._last_order_failure = time.monotonic()
        elif outcome.accepted:  # a rejection (size, collateral) says nothing about the service
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

    # --- SignedMsgUserOrders ---------------------------------------------------------------------

    def _has_signed_msg_orders(self, authority: Pubkey) -> Any:
        if self._signed_msg is None:
            return True
        cached = self._signed_msg.cached(authority)
        if cached is not None:
            return cached
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        if self._signed_msg.wait(authority, future):
            key = self._signed_msg.address(authority)
            self.run_in_background(
                lambda: self._venue.raw_accounts(
                    (key,), time.monotonic() - SIGNED_MSG_FRESH_S)[key],
                then=lambda outcome: _SignedMsgRead(authority, outcome))
        return Pending(future)

    # --- submission ----------------------------------------------------------------------------

    def _submit(self, submit: Submit) -> Any:
        if submit.order.attempt > 0 and not self._healthy:
            # a Swift retry is sent only while Swift is healthy: else it is no Swift order
            # at all, and the caller falls back on the refusal it already has
            return SwiftResult(SwiftState.NOT_SENT, "swift_unhealthy")
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        market = submit.order.market
        self._submitted[market] += 1  # a Swift order, whether or not it reaches the wire
        SWIFT_ORDERS.labels(market=market).inc()
        SWIFT_ORDERS_BY_MARKET.labels(market=market).inc()
        window_s = self._auction.duration_slots * submit.order.snapshot.slot_ms / 1000
        self._queue.append(_Queued(submit.order, submit.wait_s, future, window_s,
                                   time.monotonic()))
        self._pump()
        return Pending(future)

    def _pump(self) -> None:
        """Put queued orders on the wire while the in-flight bound and the budget allow."""
        while self._queue and self._in_flight < self._max_in_flight:
            item = self._queue[0]
            if not self._healthy:
                self._queue.popleft()
                item.future.set(SwiftResult(SwiftState.NOT_SENT, "swift_unhealthy"))
                continue
            if item.give_up_at is not None and time.monotonic() > item.give_up_at:
                self._queue.popleft()
                item.future.set(SwiftResult(SwiftState.NOT_SENT, "rate_budget"))
                continue
            wait_s = self._budget.take()
            if wait_s:
                # waiting for the wire alone is ours to bound; an order that finds no budget
                # waits in line no longer than its auction would last, and so does every order
                # queued behind it (each counted from its own queueing: they all wait for the
                # same budget). Those already marked are a prefix of the line.
                self._budget_short = True
                for queued in reversed(self._queue):
                    if queued.give_up_at is not None:
                        break
                    queued.give_up_at = queued.queued_at + queued.window_s
                if not self._refill_due:
                    self._refill_due = True
                    self.send_later(wait_s, _Refill())
                return
            if self._budget_short:  # budget again: only the wire bound holds the line now
                self._budget_short = False
                for queued in self._queue:
                    queued.give_up_at = None
            self._queue.popleft()
            self._in_flight += 1
            self.run_in_background(functools.partial(self._post, item),
                                   then=functools.partial(_PostDone, item))

    def _post(self, item: _Queued) -> Posted:
        """Sign, record, POST (background greenlet)."""
        order = item.order
        signed = sign(order, self._venue, self._auction)
        refused = self._records.fence(order, signed)
        if isinstance(refused, LeaseLost):  # fenced: nothing leaves, and the asking bot hears it
            raise refused
        if refused is not None:  # nothing left: the caller learns it as a gateway error
            SWIFT_AUDIT_LOG_FAILURES.labels(event="submitted").inc()
            raise refused
        log.info("swift order submitted", extra=log_context(order, signed.uuid))
        sent_at = time.monotonic()
        submitted = self._client.submit(signed.signed.body)
        SWIFT_API_LATENCY.observe(submitted.latency_ms)
        return Posted(signed.uuid, signed.max_slot, signed.max_ts, sent_at, submitted)

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
                      extra=log_context(item.order, None))
            not_sent = Outcome(value=SwiftResult(SwiftState.NOT_SENT,
                                                 f"gateway_error: {type(error).__name__}"))
            uuid = uuid_for(item.order.trade_id, item.order.attempt)
            if uuid is not None:  # the audit trail says so too (if the database lets it)
                self.run_in_background(
                    lambda: self._records.log(item.order, uuid.decode("ascii"), "failed",
                                              error_code=INTERNAL_ERROR,
                                              error_message=type(error).__name__),
                    then=lambda _o: _Finished(item, not_sent, INTERNAL_ERROR))
            else:
                self._finished(_Finished(item, not_sent, INTERNAL_ERROR))
            self._pump()
            return
        posted: Posted = done.outcome.value
        outcome = posted.submitted.outcome
        self._order_outcome(outcome)
        # Swift failed the order unless it accepted it or refused it for the user's account
        failure = None if outcome.accepted or not is_swift_failure(outcome.reason) \
            else outcome.reason
        self.run_in_background(
            lambda: follow(self._records, self._tracker, item.order, item.wait_s, posted),
            then=lambda o: _Finished(item, o, failure))
        self._pump()

    def _lease_lost(self, item: _Queued, error: LeaseLost) -> None:
        """The send's fence refused the order: nothing left us, and the bot that asked gets
        LeaseLost (no fallback, no audit row: the bot's new holder reconciles the trade)."""
        log.warning("swift order not sent: %s", error, extra=log_context(item.order, None))
        item.future.set_exception((type(error), error, error.__traceback__))
        self._pump()

    def _finished(self, done: _Finished) -> None:
        """Answer the caller and count how the order ended (each order once)."""
        market = done.item.order.market
        if done.outcome.error is not None:
            error = done.outcome.error
            SWIFT_ORDERS_FAILED.labels(reason=INTERNAL_ERROR).inc()
            SWIFT_ERRORS_BY_TYPE.labels(type="unknown", reason=INTERNAL_ERROR).inc()
            done.item.future.set(SwiftResult(SwiftState.UNKNOWN,
                                             f"no_answer: {type(error).__name__}"))
            return
        result: SwiftResult = done.outcome.value
        done.item.future.set(result)
        if result.state in (SwiftState.FILLED, SwiftState.PARTIAL):
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
