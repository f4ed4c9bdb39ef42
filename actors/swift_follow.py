"""What a posted Swift order came to: its refusal, or its fill as the FillTracker follows it.

After the POST, an order refused for sure is answered `rejected`; an accepted order (or one
whose answer was lost: it may have been published) goes to the FillTracker, which reports
filled, partial, expired (it can no longer trade) or unknown; only then may the caller fall
back. Each step is a row of the order's audit trail.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pykka

from actors.messages import (
    SwiftOrder,
    SwiftResult,
    SwiftState,
    Track,
    TrackedOrder,
    TrackResult,
    TrackState,
)
from actors.services import NamedActor
from actors.swift_records import SwiftRecords, answer_payload, log_context
from observability.trading_metrics import (
    PRICE_IMPROVEMENT_MEANS,
    SWIFT_AUCTION_DURATION,
    SWIFT_PRICE_IMPROVEMENT,
)
from venue.auction import LONG
from venue.swift_client import SubmitResult
from venue.swift_errors import SwiftOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Posted:
    """A POST came back (or its answer was lost)."""

    uuid: str
    max_slot: int
    max_ts: int
    sent_at: float
    submitted: SubmitResult


def follow(records: SwiftRecords, tracker: NamedActor, order: SwiftOrder, wait_s: float,
           posted: Posted) -> SwiftResult:
    """Record Swift's answer, then what became of the order (for up to `wait_s` after the
    POST when it may have been published)."""
    outcome = posted.submitted.outcome
    base: dict[str, Any] = {"swift_order_id": posted.uuid,
                            "api_latency_ms": posted.submitted.latency_ms,
                            "service_failure": service_failure(outcome)}
    records.log(order, posted.uuid, "accepted" if outcome.accepted else "failed",
                response=answer_payload(outcome),
                error_code=None if outcome.accepted else outcome.reason,
                error_message=None if outcome.accepted else outcome.detail or None,
                latency_ms=int(posted.submitted.latency_ms))
    if not outcome.accepted and not outcome.maybe_published:
        return SwiftResult(SwiftState.REJECTED, outcome.reason, outcome.kind, **base)
    deadline = posted.sent_at + wait_s
    tracked = TrackedOrder(order.authority, order.sub_account_id, order.market_index,
                           order.direction, order.base_amount, order.position_before,
                           posted.max_slot, posted.max_ts, deadline)
    while True:  # a tracker that crashed answers ActorDeadError: its successor follows it
        try:
            result: TrackResult = tracker.ask(
                Track(tracked), max(1.0, deadline - time.monotonic()) + 5.0)
            break
        except pykka.ActorDeadError:
            if time.monotonic() >= deadline:
                raise
            log.warning("fill tracker restarted; following the order again",
                        extra=log_context(order, posted.uuid))
    fill_ms = int((time.monotonic() - posted.sent_at) * 1000)
    if result.state == TrackState.UNKNOWN:
        records.log(order, posted.uuid, "unknown", error_code="fill_unconfirmed",
                    error_message="the fill reads did not settle the order in time",
                    latency_ms=fill_ms)
        return SwiftResult(SwiftState.UNKNOWN, "fill_unconfirmed", order_id=result.order_id,
                           base_filled=result.base_filled, avg_price=result.avg_price, **base)
    if result.state != TrackState.EXPIRED or result.order_id is not None:
        # it traded or was seen open, so it was placed (the id when the read showed it)
        records.log(order, posted.uuid, "placed", response={"order_id": result.order_id},
                    latency_ms=fill_ms)
    if result.state == TrackState.EXPIRED:
        reason = "not_placed" if result.order_id is None else "not_filled"
        records.log(order, posted.uuid, "expired", error_code=reason,
                    response={"order_id": result.order_id, "slot": result.slot},
                    latency_ms=fill_ms)
        return SwiftResult(SwiftState.EXPIRED, reason, order_id=result.order_id,
                           user_after=result.user_after, **base)
    improvement = _improvement_bps(order.direction, order.snapshot.market.oracle_price,
                                   result.avg_price)
    SWIFT_AUCTION_DURATION.observe(fill_ms)
    if improvement is not None:
        SWIFT_PRICE_IMPROVEMENT.labels(market=order.market).observe(improvement)
        PRICE_IMPROVEMENT_MEANS.observe(order.market, improvement)
    records.log(order, posted.uuid, "filled", response={
        "order_id": result.order_id, "base_filled": result.base_filled,
        "avg_price": result.avg_price, "partial": result.state == TrackState.PARTIAL,
        "slot": result.slot, "price_improvement_bps": improvement}, latency_ms=fill_ms)
    return SwiftResult(SwiftState(result.state), None, order_id=result.order_id,
                       base_filled=result.base_filled, avg_price=result.avg_price,
                       fill_ms=fill_ms, price_improvement_bps=improvement,
                       user_after=result.user_after, **base)


def service_failure(outcome: SwiftOutcome) -> bool:
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
