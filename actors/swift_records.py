"""The rows a Swift order leaves: its send fence and its audit events, written in batches.

The statement that records an order as submitted, right before its POST, is the send's fence:
it marks nothing unless the order's daemon still holds the bot's lease at the order's epoch.
Every event of a sent order is a row of swift_order_logs (submitted, accepted or failed,
placed, filled, expired, unknown) with the taxonomy's code in `error_code`; a row that cannot
be written is counted in `swift_audit_log_failures`. Under a fan-out the fences and the audit
rows are written in batches (`Coalesced`: the orders that reach that step while the previous
statement is in flight go in the next one, each fenced on its own), and each order waits for
its own statement, so nothing leaves before its mark and no caller is answered before its
order's rows are written.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from actors.messages import SwiftOrder
from actors.swift_signing import SignedSwift
from observability.trading_metrics import SWIFT_AUDIT_LOG_FAILURES
from storage.database import Database
from storage.trades import SwiftEvent, SwiftMark, log_swift_events, mark_swift_submitted_many
from supervision.coalesced import Coalesced
from venue.swift_errors import SwiftOutcome

log = logging.getLogger(__name__)

MOST_PER_STATEMENT = 200  # fences or audit rows written in one statement, at most


@dataclass(frozen=True)
class _Fence:
    """The fence of one POST: its trade's mark, and the lease it is sent under."""

    mark: SwiftMark
    holder: str | None
    epoch: int | None


class SwiftRecords:
    """Writes fences and audit rows for the gateway's greenlets, a statement per batch."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._fences: Coalesced[_Fence, Exception | None] = Coalesced(
            self._write_fences, MOST_PER_STATEMENT)
        self._events: Coalesced[SwiftEvent, None] = Coalesced(
            self._write_events, MOST_PER_STATEMENT)

    def fence(self, order: SwiftOrder, signed: SignedSwift) -> Exception | None:
        """Mark the order as submitted: None (its POST may leave), the LeaseLost that fenced
        it, or the error that kept the mark from being written (it does not leave either)."""
        request = {"market_index": order.market_index, "direction": order.direction,
                   "base_amount": order.base_amount, "reduce_only": order.reduce_only,
                   "slot": signed.slot, "max_slot": signed.max_slot, "max_ts": signed.max_ts,
                   "message": signed.signed.message_hex,
                   "hash_key": signed.signed.hash_status_key}
        return self._fences(_Fence(SwiftMark(order.trade_id, signed.uuid, request),
                                   order.holder, order.epoch))

    def log(self, order: SwiftOrder, uuid: str, event: str, **fields: Any) -> None:
        """One swift_order_logs row; a row that cannot be written is logged and counted."""
        log.info("swift order %s", event, extra=log_context(order, uuid))
        try:
            self._events(SwiftEvent(order.trade_id, uuid, event, **fields))
        except Exception:
            SWIFT_AUDIT_LOG_FAILURES.labels(event=event).inc()
            log.exception("could not record swift event %s", event,
                          extra=log_context(order, uuid))

    def _write_fences(self, fences: list[_Fence]) -> list[Exception | None]:
        """One batch of send fences: a statement per lease epoch among them."""
        answers: list[Exception | None] = [None] * len(fences)
        epochs: dict[tuple[str | None, int | None], list[int]] = defaultdict(list)
        for i, fence in enumerate(fences):
            epochs[(fence.holder, fence.epoch)].append(i)
        for (holder, epoch), where in epochs.items():
            try:
                refused: list[Exception | None] = [*mark_swift_submitted_many(
                    self._db, [fences[i].mark for i in where], holder=holder, epoch=epoch)]
            except Exception as exc:
                refused = [exc] * len(where)
            for i, answer in zip(where, refused, strict=True):
                answers[i] = answer
        return answers

    def _write_events(self, events: list[SwiftEvent]) -> list[None]:
        """One batch of audit rows, in one statement."""
        log_swift_events(self._db, events)
        return [None] * len(events)


def log_context(order: SwiftOrder, uuid: str | None) -> dict[str, Any]:
    """The `extra` of a log line about a Swift order."""
    return {"swift_order_id": uuid, "signal_id": order.signal_id, "bot_id": order.bot_id}


def answer_payload(outcome: SwiftOutcome) -> dict[str, Any]:
    """What Swift answered, as recorded in swift_order_logs.response_payload."""
    return {"http_status": outcome.http_status, "reason": outcome.reason,
            "kind": outcome.kind.value, "maybe_published": outcome.maybe_published}
