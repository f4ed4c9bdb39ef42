"""One order of one bot: route, guard, Swift first, fallback on-chain, record what happened.

Every order is a bot_trades row written before anything is sent; the pre-trade guard
(emergency stop, policy HMAC, row MACs) runs right before the order leaves, and again right
before a legacy fallback signs (a stop set while Swift was trying holds); the account's cached reads
are marked stale as it leaves. A Swift order that could not trade (not sent, refused, expired
after it could no longer trade) falls back on-chain when the bot and SWIFT_FALLBACK_ENABLED
allow it; an order whose fate is unknown is recorded as unknown and never sent again blindly.

Each send is fenced where it leaves (the gateway's POST, the executor's transaction): one
statement marks the trade as sent only while this daemon holds the bot's lease at the epoch the
bot learnt (`BotContext.lease_epoch`). Otherwise LeaseLost reaches the BotActor: nothing was
sent, the trade stays `pending`, and the bot's new holder reconciles it like a crash's.

Swift retries: a definite refusal the taxonomy marks retry_swift (429, 503, slot too old;
nothing was published) is signed again against a fresh snapshot, as a new Swift order
(its own uuid), after a short backoff, up to SWIFT_MAX_RETRIES_BEFORE_FALLBACK retries within
the order's budget, unless SWIFT_RETRY_WITH_SWIFT is off; only then does it fall back. A POST
without an answer is no refusal: its outcome stays unknown. `swift_attempts` of the outcome
counts every Swift order sent, for the retry job's count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

import gevent
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.bot_context import (
    ASK_TIMEOUT_S,
    LEGACY_WAIT_S,
    VENUE_READ_ERRORS,
    BotContext,
)
from actors.messages import (
    HasSignedMsgOrders,
    IsHealthy,
    LegacyOrder,
    LegacyResult,
    LegacyState,
    Submit,
    SwiftOrder,
    SwiftResult,
    SwiftState,
)
from custody.trade_guard import guard_query, guard_trade
from observability.trading_metrics import SWIFT_FALLBACK_REASONS, SWIFT_ORDERS_FALLBACK, TRADES
from security.emergency_stop import FlattenTicket, OrderIntent, OrderKind, OrderOrigin
from security.gate import GateDecision
from storage.bot_leases import LeaseLost
from storage.bots import Bot
from storage.guard_rows import GuardRows
from storage.retry_queue import NewJob, enqueue
from storage.trades import (
    NewTrade,
    SwiftStatus,
    TradeStatus,
    mark_legacy_sending,
    update_trade,
)
from trading.retry_policy import priority_for, swift_attempts_allowed, swift_retry_delay_s
from trading.routing import RouteDecision, SwiftFlags, choose_route
from trading.sizing import PlannedOrder
from venue.auction import LONG, SHORT
from venue.positions import UserSnapshot
from venue.precision import BASE, PRICE
from venue.snapshot import MarketSnapshot
from venue.swift_errors import OutcomeKind

log = logging.getLogger(__name__)


class OrderStatus(StrEnum):
    """What one planned order came to (OrderOutcome.status)."""

    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    UNKNOWN = "unknown"
    REFUSED = "refused"  # the guard refused it before signing


@dataclass(frozen=True)
class OrderOutcome:
    """What one planned order came to."""

    trade_id: str | None  # None when no order was sent (nothing to trade, paused, ...)
    status: OrderStatus
    method: str
    base_filled: int = 0
    avg_price: int | None = None
    reason: str | None = None
    user_after: UserSnapshot | None = None
    swift_attempts: int = 0  # Swift orders this order sent (retries included)


def no_order(reason: str) -> OrderOutcome:
    """An outcome for a signal that sent nothing."""
    return OrderOutcome(None, OrderStatus.FAILED, "none", reason=reason)


@dataclass(frozen=True)
class OrderRequest:
    """One planned order of a bot and everything it is built from."""

    bot: Bot
    signal_id: str | None
    order: PlannedOrder
    origin: OrderOrigin
    keypair: Keypair
    user: UserSnapshot
    snapshot: MarketSnapshot
    reference_price: int
    use_swift: bool | None = None
    ticket: FlattenTicket | None = None
    swift_attempts_before: int = 0  # Swift attempts the trade made before (a retry job's)


def execute_order(ctx: BotContext, req: OrderRequest) -> OrderOutcome:
    """Send one order (Swift first when routing allows) and record its outcome."""
    db = ctx.services.db
    bot, order = req.bot, req.order
    deadline = time.monotonic() + ctx.budget_s
    intent = OrderIntent(req.origin, OrderKind.CLOSE if order.reduce_only else OrderKind.OPEN,
                         order.reduce_only, flatten_ticket=req.ticket)
    flags = ctx.current_flags()
    route = _route(ctx, req, flags)
    before = req.user.perp(bot.market_index)
    # the trade row, and what its guard checks, in one statement (shared with the orders of
    # other bots that leave at the same time) right before it leaves
    opened = ctx.services.trade_rows((
        NewTrade(bot.id, req.signal_id, bot.wallet_address, bot.market, order.side,
                 order.base_amount, order.reduce_only, route.method,
                 before.base_asset_amount, before.quote_entry_amount, req.reference_price),
        guard_query(bot, intent)))
    if isinstance(opened, Exception):  # LeaseLost: nothing was written, nothing is sent
        raise opened
    trade_id, guard_rows = opened
    context = {"signal_id": req.signal_id, "bot_id": bot.id}
    decision = _guard(ctx, bot, intent, guard_rows)
    if not decision.allowed:
        update_trade(db, trade_id, status=TradeStatus.FAILED,
                     error_message=f"refused: {decision.reason}")
        TRADES.labels(method=route.method, status="refused").inc()
        log.warning("order refused: %s", decision.reason, extra=context)
        return OrderOutcome(trade_id, OrderStatus.REFUSED, route.method,
                            reason=decision.reason)
    direction = LONG if order.side == "long" else SHORT
    fallback_reason = route.reason
    ctx.sending(req.keypair.pubkey(), bot.drift_subaccount_id)
    attempts = 0
    if route.method == "swift":
        result, attempts = _send_swift(ctx, req, trade_id, direction, flags, deadline, context)
        if isinstance(result, BaseException):  # no answer in time: the order may be out there
            return _counted(unknown(ctx, trade_id, "swift", result, context), attempts)
        # SWIFT_FALLBACK_ENABLED off: no order goes on-chain after Swift, whatever the bot says
        may_fall_back = bot if flags.fallback_enabled else dataclasses.replace(
            bot, swift_fallback_enabled=False)
        done = _after_swift(ctx, may_fall_back, trade_id, req.signal_id, order, result,
                            context)
        if done is not None:
            return _counted(done, attempts)
        fallback_reason = f"swift_{result.state}:{result.reason or ''}".rstrip(":")
        SWIFT_ORDERS_FALLBACK.labels(market=bot.market).inc()
        SWIFT_FALLBACK_REASONS.labels(reason=result.reason or result.state).inc()
    update_trade(db, trade_id, execution_method="legacy", fallback_reason=fallback_reason)
    if route.method == "swift":  # the fallback signs seconds later: a stop set meanwhile holds
        decision = _guard(ctx, bot, intent)
        if not decision.allowed:
            update_trade(db, trade_id, status=TradeStatus.FAILED,
                         error_message=f"refused: {decision.reason}")
            TRADES.labels(method="legacy", status="refused").inc()
            log.warning("fallback refused: %s", decision.reason, extra=context)
            return _counted(OrderOutcome(trade_id, OrderStatus.REFUSED, "legacy",
                                         reason=decision.reason), attempts)
    try:  # the fallback may start seconds after the snapshot: its price limit needs a fresh one
        oracle = ctx.venue.snapshot(bot.market_index).market.oracle_price
    except VENUE_READ_ERRORS:
        oracle = req.snapshot.market.oracle_price
    ctx.sending(req.keypair.pubkey(), bot.drift_subaccount_id)
    fence = partial(mark_legacy_sending, db, trade_id, holder=ctx.services.holder,
                    epoch=ctx.lease_epoch)
    try:
        legacy = ctx.executor.place_and_take(
            LegacyOrder(req.keypair, req.keypair.pubkey(), bot.drift_subaccount_id,
                        bot.market_index, direction, order.base_amount, order.reduce_only,
                        oracle, ctx.slippage_bps, before_send=fence),
            max(LEGACY_WAIT_S, deadline - time.monotonic()))
    except LeaseLost:  # fenced before the send: nothing left, nothing more is sent from here
        raise
    except Exception as exc:  # no answer in time: the transaction may be out there
        return _counted(unknown(ctx, trade_id, "legacy", exc, context), attempts)
    return _counted(_after_legacy(ctx, bot, trade_id, req.signal_id, order, legacy, context),
                    attempts)


def _guard(ctx: BotContext, bot: Bot, intent: OrderIntent,
           rows: GuardRows | None = None) -> GateDecision:
    """The one pre-signature guard (stops, policy, row MACs), run right before each signing
    (on `rows` when they were just read with the trade row)."""
    return guard_trade(ctx.services.db, ctx.services.ring, bot, intent,
                       state_dir=str(ctx.services.settings.state_dir), rows=rows)


def _route(ctx: BotContext, req: OrderRequest, flags: SwiftFlags) -> RouteDecision:
    """The routing decision; for Swift, the authority must have its SignedMsgUserOrders."""
    bot, order = req.bot, req.order
    healthy = bool(ctx.gateway.ask(IsHealthy(), ASK_TIMEOUT_S))

    def decide(signed_msg_orders: bool = True) -> RouteDecision:
        return choose_route(flags, bot_id=bot.id, bot_swift_enabled=bot.swift_enabled,
                            market=bot.market, swift_healthy=healthy, dust=order.dust,
                            critical=order.reduce_only, use_swift_override=req.use_swift,
                            signed_msg_orders=signed_msg_orders)

    route = decide()
    if route.method == "swift" and not _has_signed_msg_orders(ctx, req.keypair.pubkey()):
        route = decide(signed_msg_orders=False)
    return route


def _has_signed_msg_orders(ctx: BotContext, authority: Pubkey) -> bool:
    """The gateway's cached answer; when it cannot say, Swift is not held back (an order
    that is never placed expires and falls back)."""
    try:
        return bool(ctx.gateway.ask(HasSignedMsgOrders(authority), ASK_TIMEOUT_S))
    except Exception as exc:
        log.warning("SignedMsgUserOrders check not answered (%s)", type(exc).__name__,
                    extra={"bot_id": ctx.bot_id})
        return True


def _send_swift(ctx: BotContext, req: OrderRequest, trade_id: str, direction: int,
                flags: SwiftFlags, deadline: float,
                context: dict[str, Any]) -> tuple[SwiftResult | BaseException, int]:
    """Send the order through Swift, again (re-signed, new uuid) after each retryable refusal
    while retries are allowed and the budget lasts; (last result or lost answer, attempts)."""
    bot, order = req.bot, req.order
    intent = OrderIntent(req.origin, OrderKind.CLOSE if order.reduce_only else OrderKind.OPEN,
                         order.reduce_only, flatten_ticket=req.ticket)
    allowed = swift_attempts_allowed(ctx.swift_max_retries) - req.swift_attempts_before
    snapshot = req.snapshot
    before = req.user.perp(bot.market_index)
    attempt = 0
    refused: SwiftResult | None = None  # the last refusal, when this is a retry
    while True:
        swift_order = SwiftOrder(req.keypair, req.keypair.pubkey(), bot.drift_subaccount_id,
                                 bot.market, direction, order.base_amount, order.reduce_only,
                                 snapshot, before, trade_id, req.signal_id, bot.id,
                                 attempt=attempt, holder=ctx.services.holder,
                                 epoch=ctx.lease_epoch)
        wait_s = max(1.0, deadline - time.monotonic())
        attempt += 1
        try:
            result = ctx.gateway.ask(Submit(swift_order, wait_s), wait_s + ASK_TIMEOUT_S)
        except LeaseLost:  # fenced before the POST: nothing left, nothing more is sent
            raise
        except Exception as exc:
            return exc, attempt
        if refused is not None and result.state == SwiftState.NOT_SENT:
            return refused, attempt - 1  # the retry never left: the refusal is the answer
        if not (result.state == SwiftState.REJECTED and result.kind == OutcomeKind.RETRY_SWIFT
                and flags.retry_with_swift and attempt < allowed):
            return result, attempt
        delay_s = swift_retry_delay_s(attempt, ctx.rng)
        if time.monotonic() + delay_s >= deadline:
            return result, attempt
        refused = result  # the gateway sends the retry only if Swift is still healthy
        log.warning("swift order refused (%s); Swift retry %d of %d in %.2f s", result.reason,
                    attempt, allowed - 1, delay_s,
                    extra={**context, "swift_order_id": result.swift_order_id})
        gevent.sleep(delay_s)
        if not _guard(ctx, bot, intent).allowed:  # a stop set during the backoff holds
            return result, attempt
        # a fresh slot (and oracle) to sign the new order against; if it cannot be read, the
        # gateway signs at the current slot once the old one is too old
        with contextlib.suppress(*VENUE_READ_ERRORS):
            snapshot = ctx.venue.snapshot(bot.market_index)


def _counted(outcome: OrderOutcome, swift_attempts: int) -> OrderOutcome:
    return dataclasses.replace(outcome, swift_attempts=swift_attempts)


def unknown(ctx: BotContext, trade_id: str, method: str, exc: BaseException,
            context: dict[str, Any]) -> OrderOutcome:
    """An order whose fate we could not learn: recorded as unknown, then reconciled."""
    reason = f"no_answer: {type(exc).__name__}"
    update_trade(ctx.services.db, trade_id, status=TradeStatus.UNKNOWN, error_message=reason)
    TRADES.labels(method=method, status="unknown").inc()
    log.error("order outcome unknown (%s); it will be reconciled", reason, extra=context)
    return OrderOutcome(trade_id, OrderStatus.UNKNOWN, method, reason=reason)


def _after_swift(ctx: BotContext, bot: Bot, trade_id: str, signal_id: str | None,
                 order: PlannedOrder, result: SwiftResult,
                 context: dict[str, Any]) -> OrderOutcome | None:
    """Record a Swift result; None means: fall back to legacy (safe and allowed).

    swift_status takes one of SwiftStatus's four values (filled, failed, fallback; an unknown
    fate stays submitted); what Swift said, in detail, is in swift_order_logs."""
    db = ctx.services.db
    fields: dict[str, Any] = {}
    if result.swift_order_id is not None:
        fields["swift_order_id"] = result.swift_order_id
    log.info("swift order %s", result.state,
             extra={**context, "swift_order_id": result.swift_order_id})
    if result.state in (SwiftState.FILLED, SwiftState.PARTIAL):
        _record_fill(ctx, bot, trade_id, signal_id, order, "swift", result.base_filled,
                     result.avg_price, fields | {
                         "swift_status": SwiftStatus.FILLED,
                         "swift_filled_at": datetime.now(UTC).replace(tzinfo=None),
                         "auction_duration_ms": result.fill_ms,
                         "price_improvement": None if result.price_improvement_bps is None
                         else round(result.price_improvement_bps / 100, 4)})
        status = (OrderStatus.COMPLETED if result.state == SwiftState.FILLED
                  else OrderStatus.PARTIAL)
        return OrderOutcome(trade_id, status, "swift", result.base_filled, result.avg_price,
                            user_after=result.user_after)
    if result.state == SwiftState.UNKNOWN:
        update_trade(db, trade_id, status=TradeStatus.UNKNOWN, error_message=result.reason,
                     swift_status=SwiftStatus.SUBMITTED, **fields)
        TRADES.labels(method="swift", status="unknown").inc()
        return OrderOutcome(trade_id, OrderStatus.UNKNOWN, "swift", reason=result.reason)
    if result.kind == OutcomeKind.PERMANENT or not bot.swift_fallback_enabled:
        reason = result.reason or result.state
        update_trade(db, trade_id, status=TradeStatus.FAILED, error_message=reason,
                     swift_status=SwiftStatus.FAILED, **fields)
        TRADES.labels(method="swift", status="failed").inc()
        return OrderOutcome(trade_id, OrderStatus.FAILED, "swift", reason=reason)
    update_trade(db, trade_id, swift_status=SwiftStatus.FALLBACK, **fields)
    return None


def _after_legacy(ctx: BotContext, bot: Bot, trade_id: str, signal_id: str | None,
                  order: PlannedOrder, result: LegacyResult,
                  context: dict[str, Any]) -> OrderOutcome:
    db = ctx.services.db
    log.info("on-chain order %s", result.state, extra=context)
    if result.state in (LegacyState.FILLED, LegacyState.PARTIAL):
        _record_fill(ctx, bot, trade_id, signal_id, order, "legacy", result.base_filled,
                     result.avg_price, {"tx_signature": result.signature})
        status = (OrderStatus.COMPLETED if result.state == LegacyState.FILLED
                  else OrderStatus.PARTIAL)
        return OrderOutcome(trade_id, status, "legacy", result.base_filled, result.avg_price)
    status = (OrderStatus.UNKNOWN if result.state == LegacyState.UNKNOWN
              else OrderStatus.FAILED)
    update_trade(db, trade_id, status=status, tx_signature=result.signature,
                 error_message=result.error or result.state)
    TRADES.labels(method="legacy", status=status).inc()
    return OrderOutcome(trade_id, status, "legacy", reason=result.error or result.state)


def _record_fill(ctx: BotContext, bot: Bot, trade_id: str, signal_id: str | None,
                 order: PlannedOrder, method: str, filled: int, price: int | None,
                 fields: dict[str, Any]) -> None:
    """Record the filled part; queue the remainder when it is above the minimum size."""
    db = ctx.services.db
    partial = filled < order.base_amount
    update_trade(db, trade_id,
                 status=TradeStatus.PARTIAL if partial else TradeStatus.COMPLETED,
                 filled_size=Decimal(filled) / BASE,
                 price=None if price is None else Decimal(price) / PRICE, **fields)
    TRADES.labels(method=method, status="partial" if partial else "completed").inc()
    remainder = order.base_amount - filled
    if partial and remainder > 0:
        priority = priority_for(order.reduce_only)
        enqueue(db, NewJob(signal_id=signal_id,
                bot_id=bot.id, wallet_address=bot.wallet_address, market=bot.market,
                side=order.side, size=Decimal(remainder) / BASE, reduce_only=order.reduce_only,
                priority=priority.name, max_attempts=priority.max_attempts,
                sub_account_id=bot.drift_subaccount_id, original_trade_id=trade_id,
                original_execution_method=method, is_remainder=True,
                last_error=f"partial fill: {filled} of {order.base_amount}"),
                ring=ctx.services.ring, holder=ctx.services.holder,
                epoch=ctx.lease_epoch)
