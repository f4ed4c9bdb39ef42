"""SwiftGateway: owns Swift health and the submission budget; follows each order to its end.

Health is fed by the health monitor's /health probes and by submission outcomes, counted
apart: 3 consecutive failed probes, or 3 consecutive orders the service failed (no answer,
429, 5xx), mark Swift unhealthy. An accepted order clears the order count; a good probe clears
the probe count, and the order count too once `recovery_s` has passed since the last failed
order (a /health that answers while /orders fails must not make us retry Swift on every
signal). Order rejections (bad size, collateral) say nothing about the service.

A submission is answered with a Pending at once; a background greenlet signs and POSTs the
order, then follows it: hash-status until placed, the User account until filled or expired.
An order whose POST went unanswered may have been published, so it is followed exactly like an
accepted one; "expired" is only reported once the chain's slot has passed the order's
max_slot, after which it can never be placed. Only then may the caller fall back.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import gevent
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.legacy_executor import ExecutorClient
from observability.trading_metrics import (
    SWIFT_API_LATENCY,
    SWIFT_AUCTION_DURATION,
    SWIFT_AVG_FILL_TIME_BY_MARKET,
    SWIFT_ERRORS_BY_TYPE,
    SWIFT_HEALTHY,
    SWIFT_ORDERS,
    SWIFT_ORDERS_BY_MARKET,
    SWIFT_ORDERS_FAILED,
    SWIFT_ORDERS_SUCCESS,
    SWIFT_PRICE_IMPROVEMENT,
    SWIFT_SUCCESS_RATE_BY_MARKET,
)
from storage.database import Database
from storage.trades import log_swift_event
from supervision import Outcome, SupervisedActor
from venue.auction import LONG, AuctionConfig
from venue.positions import PerpPositionView, fill_from_delta
from venue.swift_client import PlacementStatus, SwiftClient
from venue.swift_errors import SwiftOutcome
from venue.swift_message import build_message, market_order, sign_order

log = logging.getLogger(__name__)

POLL_FIRST_S = 0.2
POLL_MAX_S = 1.0
SLOT_GRACE = 3


@dataclass(frozen=True)
class SwiftOrder:
    """One market order to send through Swift for `authority`."""

    signer: Keypair = field(repr=False)
    authority: Pubkey
    sub_account_id: int
    market_index: int
    market: str
    direction: int  # venue.auction.LONG / SHORT
    base_amount: int
    reduce_only: bool
    oracle_price: int
    slot: int
    position_before: PerpPositionView
    trade_id: str | None = None
    signal_id: str | None = None
    bot_id: str | None = None


@dataclass(frozen=True)
class SwiftResult:
    """What became of a Swift order; `state` says whether a fallback is safe.

    not_sent: nothing left us (unhealthy, budget) — fallback is safe.
    rejected: the service refused it (kind says retry_swift/fallback_legacy/permanent) — safe.
    expired: published but never placed or never filled, and its max_slot has passed — safe.
    filled / partial: it traded (partial: the rest is not coming).
    unknown: we could not learn its fate in time — never send it again blindly.
    """

    state: str
    reason: str | None = None
    kind: str | None = None
    swift_order_id: str | None = None
    order_id: int | None = None
    base_filled: int = 0
    avg_price: int | None = None
    api_latency_ms: float | None = None
    fill_ms: int | None = None
    price_improvement_bps: float | None = None
    service_failure: bool = False  # the POST itself went unanswered, 429 or 5xx


@dataclass(frozen=True)
class Submit:
    """Send one SwiftOrder; answered with a Pending SwiftResult."""

    order: SwiftOrder
    wait_s: float


@dataclass(frozen=True)
class SwiftProbe:
    """A /health probe result from the health monitor."""

    healthy: bool


@dataclass(frozen=True)
class PlacementOf:
    """Ask hash-status about a recorded order (its `hash_key`); answered with a Pending."""

    hash_key: str


@dataclass(frozen=True)
class IsHealthy:
    """Ask whether Swift is usable now."""


@dataclass(frozen=True)
class _Finished:
    market: str
    outcome: Outcome


class SwiftGateway(SupervisedActor):
    """Owns Swift health and budget; submits and follows orders off its mailbox."""

    def __init__(self, client: SwiftClient, executor: ExecutorClient, db: Database,
                 auction: AuctionConfig, slot_time_ms: int, failures_unhealthy: int = 3,
                 rate_per_s: float = 20.0, burst: int = 50, recovery_s: float = 30.0) -> None:
        super().__init__()
        self._client = client
        self._executor = executor
        self._db = db
        self._auction = auction
        self._slot_s = slot_time_ms / 1000
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
        if isinstance(message, PlacementOf):
            return self.answer_later(lambda: self._client.hash_status_by_key(message.hash_key))
        if isinstance(message, SwiftProbe):
            return self._probed(message.healthy)
        if isinstance(message, _Finished):
            return self._finished(message)
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

    # --- submission ----------------------------------------------------------------------------

    def _submit(self, submit: Submit) -> Any:
        if not self._healthy:
            return SwiftResult("not_sent", "swift_unhealthy")
        if not self._take_token():
            return SwiftResult("not_sent", "rate_budget")
        order = submit.order
        self._submitted[order.market] += 1
        SWIFT_ORDERS.labels(market=order.market).inc()
        SWIFT_ORDERS_BY_MARKET.labels(market=order.market).inc()

        return self.answer_later(lambda: self._follow(order, submit.wait_s),
                                 then=lambda outcome: _Finished(order.market, outcome))

    def _finished(self, done: _Finished) -> None:
        result: SwiftResult | None = done.outcome.value
        if done.outcome.error is not None or result is None:
            SWIFT_ORDERS_FAILED.labels(market=done.market, reason="internal_error").inc()
            return
        if result.service_failure:
            self._order_outcome(True)
        elif result.state in ("rejected", "filled", "partial", "expired"):
            self._order_outcome(False)
        if result.state in ("filled", "partial"):
            self._filled[done.market] += 1
            SWIFT_ORDERS_SUCCESS.labels(market=done.market).inc()
            if result.fill_ms is not None:
                self._fill_ms_total[done.market] += result.fill_ms
                SWIFT_AVG_FILL_TIME_BY_MARKET.labels(market=done.market).set(
                    self._fill_ms_total[done.market] / self._filled[done.market])
        else:
            reason = result.reason or result.state
            SWIFT_ORDERS_FAILED.labels(market=done.market, reason=reason).inc()
            SWIFT_ERRORS_BY_TYPE.labels(type=result.kind or result.state, reason=reason).inc()
        SWIFT_SUCCESS_RATE_BY_MARKET.labels(market=done.market).set(
            self._filled[done.market] / max(1, self._submitted[done.market]))

    # --- following one order (background greenlet) ---------------------------------------------

    def _follow(self, order: SwiftOrder, wait_s: float) -> SwiftResult:
        deadline = time.monotonic() + wait_s
        spec = market_order(direction=order.direction, base_asset_amount=order.base_amount,
                            market_index=order.market_index, oracle_price=order.oracle_price,
                            auction=self._auction, reduce_only=order.reduce_only)
        message = build_message(spec, order.slot, sub_account_id=order.sub_account_id)
        signed = sign_order(order.signer, message)
        uuid = message.uuid.decode("ascii")
        max_slot = message.slot + self._auction.duration_slots
        self._log(order, uuid, "submitted", request={
            "market_index": order.market_index, "direction": order.direction,
            "base_amount": order.base_amount, "reduce_only": order.reduce_only,
            "slot": message.slot, "max_slot": max_slot, "message": signed.message_hex,
            "hash_key": signed.hash_status_key})
        sent_at = time.monotonic()
        submitted = self._client.submit(signed.body)
        SWIFT_API_LATENCY.observe(submitted.latency_ms)
        outcome = submitted.outcome
        base = {"swift_order_id": uuid, "api_latency_ms": submitted.latency_ms,
                "service_failure": _service_failure(outcome)}
        if not outcome.accepted and not outcome.maybe_published:
            self._log(order, uuid, "failed", error_code=outcome.reason,
                      error_message=outcome.detail, latency_ms=int(submitted.latency_ms))
            return SwiftResult("rejected", outcome.reason, outcome.kind.value, **base)
        self._log(order, uuid, "accepted" if outcome.accepted else "failed",
                  response={"http_status": outcome.http_status, "reason": outcome.reason},
                  error_code=None if outcome.accepted else outcome.reason,
                  latency_ms=int(submitted.latency_ms))
        order_id = self._await_placement(signed.signature, max_slot, deadline)
        if order_id is None:
            if self._slot_passed(max_slot, deadline):
                self._log(order, uuid, "expired", error_code="not_placed")
                return SwiftResult("expired", "not_placed", **base)
            return SwiftResult("unknown", "placement_unconfirmed", **base)
        self._log(order, uuid, "placed", response={"order_id": order_id})
        return self._await_fill(order, uuid, order_id, max_slot, sent_at, deadline, base)

    def _await_placement(self, signature: bytes, max_slot: int, deadline: float) -> int | None:
        pause = POLL_FIRST_S
        while time.monotonic() < deadline:
            status = self._client.hash_status(signature)
            if status.status is PlacementStatus.PLACED:
                return status.order_id
            if self._slot_passed(max_slot, deadline, read_only=True):
                return None
            gevent.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(POLL_MAX_S, pause * 1.5)
        return None

    def _slot_passed(self, max_slot: int, deadline: float, read_only: bool = False) -> bool:
        """True once the chain's slot is past max_slot (+ grace): the order can no longer land.

        Unless `read_only`, waits (bounded by the deadline) for that slot to come."""
        while True:
            try:
                slot = self._executor.slot()
            except Exception:
                slot = None
            if slot is not None and slot > max_slot + SLOT_GRACE:
                return True
            if read_only or time.monotonic() >= deadline:
                return False
            remaining = (max_slot + SLOT_GRACE + 1 - (slot or max_slot)) * self._slot_s
            gevent.sleep(max(self._slot_s, min(remaining, deadline - time.monotonic())))

    def _await_fill(self, order: SwiftOrder, uuid: str, order_id: int, max_slot: int,
                    sent_at: float, deadline: float, base: dict[str, Any]) -> SwiftResult:
        pause = POLL_FIRST_S
        while True:
            state = self._executor.trading_state(order.authority, order.sub_account_id,
                                                 order.market_index)
            assert state.user is not None
            open_order = state.user.orders.get(order_id)
            still_open = open_order is not None and open_order.status == "Open"
            moved = fill_from_delta(order.position_before,
                                    state.user.perp(order.market_index)).base_filled != 0
            past_max_slot = state.slot > max_slot + SLOT_GRACE
            # an order missing with nothing filled is final only in a read past its max_slot:
            # an earlier read (a lagging node) may simply predate its placement
            settled = (not still_open) and (moved or past_max_slot)
            if settled or past_max_slot or time.monotonic() >= deadline:
                break
            gevent.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(POLL_MAX_S, pause * 1.5)
        fill = fill_from_delta(order.position_before, state.user.perp(order.market_index))
        filled = min(abs(fill.base_filled), order.base_amount)
        fill_ms = int((time.monotonic() - sent_at) * 1000)
        if not settled and not past_max_slot:
            return SwiftResult("unknown", "fill_unconfirmed", order_id=order_id,
                               base_filled=filled, avg_price=fill.avg_price, **base)
        if filled == 0:
            self._log(order, uuid, "expired", error_code="not_filled")
            return SwiftResult("expired", "not_filled", order_id=order_id, **base)
        improvement = _improvement_bps(order.direction, order.oracle_price, fill.avg_price)
        SWIFT_AUCTION_DURATION.observe(fill_ms)
        if improvement is not None:
            SWIFT_PRICE_IMPROVEMENT.observe(improvement)
        state_name = "filled" if filled >= order.base_amount else "partial"
        self._log(order, uuid, "filled", response={
            "order_id": order_id, "base_filled": filled, "avg_price": fill.avg_price,
            "partial": state_name == "partial"}, latency_ms=fill_ms)
        return SwiftResult(state_name, None, order_id=order_id, base_filled=filled,
                           avg_price=fill.avg_price, fill_ms=fill_ms,
                           price_improvement_bps=improvement, **base)

    def _log(self, order: SwiftOrder, uuid: str, event: str, **fields: Any) -> None:
        log.info("swift order %s", event, extra={
            "swift_order_id": uuid, "signal_id": order.signal_id, "bot_id": order.bot_id})
        try:
            log_swift_event(self._db, order.trade_id, uuid, event, **fields)
        except Exception:
            log.exception("could not record swift event %s", event, extra={
                "swift_order_id": uuid, "signal_id": order.signal_id, "bot_id": order.bot_id})


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
