"""BotActor: one per bot; executes that bot's signals strictly one at a time, in arrival order.

The actor holds nothing that the database cannot rebuild. A ProcessSignal message is only a
wake-up: the actor claims and runs every accepted signal of its bot in arrival order, so a
signal dispatched twice, or dispatched before a backlog left by a restart, still runs once and
in order. Different bots are different actors, so they never wait for each other.

For each signal: the seed plan's early trigger points (bot paused, execution authorization
disabled or expired) skip execution and still route the signal to subscribers; otherwise the
bot's account and market are read from the venue, orders are sized, each order passes the
pre-trade guard (emergency stop, policy HMAC), goes Swift first when routing allows, and falls
back to the on-chain path when Swift could not trade and the bot allows fallback. Every order
is a bot_trades row written before anything is sent.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pykka
from solders.keypair import Keypair

from actors.legacy_executor import ExecutorClient, LegacyOrder, LegacyResult, TradingState
from actors.profit_share import notify_close
from actors.services import Services
from actors.swift_gateway import (
    SLOT_GRACE,
    IsHealthy,
    PlacementOf,
    Submit,
    SwiftOrder,
    SwiftResult,
)
from observability.trading_metrics import (
    SWIFT_FALLBACK_REASONS,
    SWIFT_ORDERS_FALLBACK,
    SWIFT_RETRIES,
    TRADES,
)
from security.agent_keys import open_agent_privkey_legacy
from security.emergency_stop import FlattenTicket, OrderIntent, OrderKind, OrderOrigin
from security.execution import ExecutionAuthorization, ExecutionStatus, check_execution
from security.log_redaction import register_agent_keypair
from security.trade_guard import guard_trade
from storage.bots import Bot, get_bot, umk_envelope
from storage.retry_queue import (
    NewJob,
    count_swift_attempt,
    enqueue,
    mark_sending,
    settle_done,
    settle_failed,
    settle_retry,
    settle_unknown,
)
from storage.signals import (
    claim_signal,
    finish_signal,
    interrupted_signals,
    pending_signals,
    requeue_signal,
    signal_age_s,
    superseded,
)
from storage.trades import (
    NewTrade,
    filled_closes_without_share,
    last_swift_submission,
    open_trade,
    pending_trades,
    update_trade,
)
from storage.wallets import legacy_agent_envelope
from supervision import SupervisedActor, request, whereis
from trading.alerts import Signal
from trading.collateral import free_collateral_usd
from trading.retry_policy import PRIORITIES, after_failure, priority_for, use_swift_on_retry
from trading.routing import SwiftFlags, choose_route
from trading.sizing import (
    AccountState,
    BotLimits,
    MarketRules,
    PlannedOrder,
    plan_open,
    plan_orders,
)
from venue.auction import LONG, SHORT
from venue.positions import PerpPositionView
from venue.rpc_client import AllRpcDown, RpcError, RpcTransportError

log = logging.getLogger(__name__)

BASE = Decimal(10**9)
PRICE = Decimal(10**6)
ASK_TIMEOUT_S = 10.0
RECHECK_S = 5.0  # an unknown outcome whose Swift auction is still open is looked at again
VENUE_WAIT_S = 300.0  # a signal waits this long for an unreachable venue, then fails
VENUE_PAUSE_FIRST_S = 1.0
VENUE_PAUSE_MAX_S = 30.0
LEGACY_WAIT_S = 130.0  # the executor's worst case: a read with failover, send, 30 s confirm
VENUE_READ_ERRORS = (RpcError, RpcTransportError, AllRpcDown, pykka.Timeout,
                     pykka.ActorDeadError)
TRANSIENT_REASONS = frozenset({"not_filled", "expired", "rpc_unreachable", "AllRpcDown",
                               "BlockhashNotFound", "send_unanswered", "unconfirmed"})


@dataclass(frozen=True)
class ProcessSignal:
    """Wake-up: run this bot's accepted signals (this one among them) in arrival order."""

    signal_id: str


@dataclass(frozen=True)
class _Resume:
    pass


@dataclass(frozen=True)
class RunRetry:
    """Run one claimed retry job (claimed by `worker`) and settle it."""

    job: dict[str, Any]
    worker: str


@dataclass(frozen=True)
class OrderOutcome:
    """What one planned order came to."""

    trade_id: str | None  # None when no order was sent (nothing to trade, paused, ...)
    status: str  # completed | partial | failed | unknown | refused
    method: str
    base_filled: int = 0
    avg_price: int | None = None
    reason: str | None = None


def bot_child_name(bot_id: str) -> str:
    """The name of a bot's actor under the bots supervisor."""
    return f"bot-{bot_id}"


class BotActor(SupervisedActor):
    """Executes one bot's signals in order; see the module docstring."""

    metrics_name = "bots"

    def __init__(self, bot_id: str, services: Services) -> None:
        super().__init__()
        self._bot_id = bot_id
        self._services = services
        self._keypair: Keypair | None = None
        settings = services.settings
        self._flags = SwiftFlags(
            enabled=settings["SWIFT_ENABLED"], rollout_percent=settings["SWIFT_ROLLOUT_PERCENT"],
            critical_orders_legacy=settings["SWIFT_CRITICAL_ORDERS_LEGACY"],
            allowed_markets=settings["SWIFT_SUPPORTED_MARKETS"])
        self._budget_s = settings["EXECUTION_BUDGET_MS"] / 1000
        self._slippage_bps = settings["LEGACY_SLIPPAGE_BPS"]
        self._rng = random.Random()
        self._venue_pause = VENUE_PAUSE_FIRST_S / 2
        # an order of unknown fate is checked only after it can no longer trade: past a Swift
        # auction and a blockhash's life, which RETRY_LEASE_S is set to outlast
        self._unknown_settle_s = settings["RETRY_LEASE_S"]

    def on_start(self) -> None:
        if get_bot(self._services.db, self._bot_id) is None:
            raise LookupError(f"bot {self._bot_id} does not exist")
        # the work itself runs from the mailbox: a start must stay quick for the supervisor
        self.actor_ref.tell(_Resume())

    def _resume(self) -> None:
        """Reconcile signals a crash interrupted, then run the backlog."""
        bot = get_bot(self._services.db, self._bot_id)
        assert bot is not None
        for row in interrupted_signals(self._services.db, self._bot_id):
            self._reconcile_interrupted(bot, row)
        self._drain()

    def _reconcile_interrupted(self, bot: Bot, row: dict[str, Any]) -> None:
        """A crash cut this signal short: each order that may have left becomes a retry job of
        unknown outcome (checked against the venue's position once it can no longer trade),
        the signal ends, and a source signal is routed (copies are made once)."""
        db = self._services.db
        handed = 0
        for trade in pending_trades(db, row["id"]):
            priority = priority_for(trade["reduce_only"])
            enqueue(db, NewJob(
                bot_id=bot.id, wallet_address=bot.wallet_address, market=bot.market,
                side=trade["side"], size=trade["size"], reduce_only=trade["reduce_only"],
                priority=priority.name, max_attempts=priority.max_attempts,
                signal_id=row["id"], sub_account_id=bot.drift_subaccount_id,
                original_trade_id=trade["id"],
                original_execution_method=trade["execution_method"],
                last_error="interrupted by a restart", outcome_unknown=True,
                position_before=trade["position_before_base"]),
                delay_s=self._unknown_settle_s)
            update_trade(db, trade["id"], status="unknown",
                         error_message="interrupted by a restart; reconciling")
            handed += 1
        if bot.is_subscriber:  # closes that filled before the crash still owe their share
            for trade in filled_closes_without_share(db, row["id"]):
                notify_close(self._services, trade["id"], PerpPositionView(
                    bot.market_index, base_asset_amount=int(trade["position_before_base"]),
                    quote_entry_amount=int(trade["entry_quote_before"])),
                    int(trade["filled_size"] * BASE), int(trade["price"] * PRICE))
        self._route(row, "interrupted")
        finish_signal(db, row["id"], "failed", {"interrupted": True, "reconciling": handed},
                      "interrupted by a restart")
        log.warning("interrupted signal handed to reconciliation (%d order(s))", handed,
                    extra={"signal_id": row["id"], "bot_id": bot.id})

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Resume):
            return self._resume()
        if isinstance(message, ProcessSignal):
            return self._drain()
        if isinstance(message, RunRetry):
            return self._retry(message.job, message.worker)
        return super().on_receive(message)

    # --- signals -------------------------------------------------------------------------------

    def _drain(self) -> int:
        """Claim and run every accepted signal of this bot, oldest first; returns how many.

        A signal the venue could not be read for goes back to `accepted` and the drain stops
        there, so later signals keep waiting behind it (strict order); it is tried again with
        backoff while it is younger than VENUE_WAIT_S, then fails.
        """
        done = 0
        for signal_id in pending_signals(self._services.db, self._bot_id):
            row = claim_signal(self._services.db, signal_id)
            if row is None:
                continue
            if self._process(row):
                self._venue_pause = min(VENUE_PAUSE_MAX_S, self._venue_pause * 2)
                self.send_later(self._venue_pause, ProcessSignal("venue-retry"))
                break
            self._venue_pause = VENUE_PAUSE_FIRST_S / 2
            done += 1
        return done

    def _process(self, row: dict[str, Any]) -> bool:
        """Run one claimed signal; True when it was put back to wait for the venue."""
        db = self._services.db
        signal_id, source = row["id"], row["source"]
        context = {"signal_id": signal_id, "bot_id": self._bot_id}
        bot = get_bot(db, self._bot_id)
        assert bot is not None
        skip = None if source == "flatten" else self._trigger_point(bot)
        if skip is not None:
            self._route(row, skip)
            finish_signal(db, signal_id, "skipped", {"trigger": skip}, skip)
            log.info("signal skipped: %s", skip, extra=context)
            return False
        try:
            outcomes = self._execute_signal(bot, row, source)
        except Exception:
            # an order may have left: the signal stays `processing`, and the restarted actor
            # hands its pending trades to reconciliation (on_start) instead of guessing now
            log.exception("signal interrupted by an error", extra=context)
            raise
        unreachable = [o for o in outcomes if (o.reason or "").startswith("venue_unreachable")]
        if unreachable and not any(o.trade_id for o in outcomes) and \
                signal_age_s(db, signal_id) < VENUE_WAIT_S:
            requeue_signal(db, signal_id)
            log.warning("venue unreachable: the signal waits in order", extra=context)
            return True
        statuses = {o.status for o in outcomes}
        status = ("done" if statuses <= {"completed"} else
                  "failed" if statuses & {"failed", "refused"} else "partial")
        self._route(row, "executed")
        finish_signal(db, signal_id, status, {"orders": [o.__dict__ for o in outcomes]},
                      ", ".join(sorted({o.reason for o in outcomes if o.reason})) or None)
        return False

    def _trigger_point(self, bot: Bot) -> str | None:
        """The plan's early exits: paused, auth disabled, auth expired (UMK-path bots only)."""
        if not bot.is_active:
            return "bot_paused"
        if umk_envelope(self._services.db, bot.id) is None:
            return None  # server-key path: no user session to authorize
        status = check_execution(ExecutionAuthorization(
            bot.id, bot.wallet_address, bot.execution_active, bot.execution_expires_at),
            datetime.now(UTC))
        return None if status is ExecutionStatus.ALLOWED else status.value

    def _route(self, row: dict[str, Any], trigger: str) -> None:
        """Hand a source signal to the fan-out and wait until its copies are committed
        (copies of copies are never re-routed)."""
        if row["source"] != "webhook" or self._services.root is None:
            return
        from actors.fanout import RouteSignal

        fanout = whereis(self._services.root, "fanout", ASK_TIMEOUT_S)
        request(fanout, RouteSignal(row["id"], self._bot_id, trigger), ASK_TIMEOUT_S)

    # --- orders --------------------------------------------------------------------------------

    def _execute_signal(self, bot: Bot, row: dict[str, Any], source: str) -> list[OrderOutcome]:
        signal = Signal.from_dict(row["parsed"])
        use_swift = (row["parsed"] or {}).get("use_swift")
        keypair = self._agent_keypair(bot)
        executor = ExecutorClient(self._services, ASK_TIMEOUT_S)
        try:
            state = executor.trading_state(keypair.pubkey(), bot.drift_subaccount_id,
                                           bot.market_index)
        except VENUE_READ_ERRORS as exc:  # nothing was sent: a failed signal, not a crash
            return [self._no_order(f"venue_unreachable: {type(exc).__name__}")]
        if state.user is None:
            return [self._no_order("venue_user_missing")]
        limits = BotLimits(bot.leverage, bot.max_position_size)
        rules = MarketRules(state.market.min_order_size, state.market.step_size)
        plan = plan_orders(signal, limits, rules, self._account(bot, state),
                           Decimal(state.market.oracle_price) / PRICE)
        if plan.pause_reason:
            self._pause(bot, plan.pause_reason)
            return [self._no_order(plan.pause_reason[:200])]
        outcomes: list[OrderOutcome] = []
        origin = {"fanout": OrderOrigin.SUBSCRIBER, "manual": OrderOrigin.MANUAL,
                  "flatten": OrderOrigin.FLATTEN}.get(source, OrderOrigin.WEBHOOK)
        flatten = (row["parsed"] or {}).get("flatten")
        ticket = FlattenTicket(flatten["stop_id"], flatten["scope"]) if flatten else None
        for order in plan.orders:
            if order.purpose == "flip_open":  # size the open from the account after the close
                state = executor.trading_state(keypair.pubkey(), bot.drift_subaccount_id,
                                               bot.market_index)
                fresh = plan_open(order.side, limits, rules, self._account(bot, state),
                                  Decimal(state.market.oracle_price) / PRICE)
                if fresh.pause_reason:
                    self._pause(bot, fresh.pause_reason)
                if not fresh.orders:
                    outcomes.append(self._no_order(fresh.note[:200]))
                    break
                order = fresh.orders[0]
            outcome = self._execute_order(bot, row["id"], order, origin, keypair, state,
                                          use_swift, ticket)
            if (order.reduce_only and bot.is_subscriber and state.user is not None
                    and outcome.trade_id and outcome.status in ("completed", "partial")):
                notify_close(self._services, outcome.trade_id,
                             state.user.perp(bot.market_index), outcome.base_filled,
                             outcome.avg_price)
            outcomes.append(outcome)
            if outcome.status == "unknown" or (outcome.status == "failed" and (
                    outcome.reason in TRANSIENT_REASONS or order.reduce_only)):
                self._queue_retry(bot, row["id"], order, outcome, state, ticket)
            if outcome.status not in ("completed", "partial"):
                break  # never open the second half of a flip on a failed close
        if not plan.orders:
            log.info("no order: %s", plan.note, extra={"signal_id": row["id"], "bot_id": bot.id})
        return outcomes

    def _account(self, bot: Bot, state: TradingState) -> AccountState:
        assert state.user is not None
        free = free_collateral_usd(
            state.user, self._services.profile.quote_spot_market_index,
            {bot.market_index: (state.market.oracle_price, state.market.margin_ratio_initial)})
        return AccountState(free, state.user.perp(bot.market_index).base_asset_amount)

    def _execute_order(self, bot: Bot, signal_id: str, order: PlannedOrder, origin: OrderOrigin,
                       keypair: Keypair, state: TradingState, use_swift: bool | None,
                       ticket: FlattenTicket | None = None) -> OrderOutcome:
        db = self._services.db
        deadline = time.monotonic() + self._budget_s
        intent = OrderIntent(origin, OrderKind.CLOSE if order.reduce_only else OrderKind.OPEN,
                             order.reduce_only, flatten_ticket=ticket)
        gateway = whereis(self._services.root, "swift_gateway", ASK_TIMEOUT_S)
        healthy = bool(gateway.ask(IsHealthy(), timeout=ASK_TIMEOUT_S))
        route = choose_route(self._flags, bot_id=bot.id, bot_swift_enabled=bot.swift_enabled,
                             market=bot.market, swift_healthy=healthy, dust=order.dust,
                             critical=order.reduce_only, use_swift_override=use_swift)
        assert state.user is not None
        before = state.user.perp(bot.market_index)
        trade_id = open_trade(db, NewTrade(bot.id, signal_id, bot.wallet_address, bot.market,
                                           order.side, order.base_amount, order.reduce_only,
                                           route.method, before.base_asset_amount,
                                           before.quote_entry_amount))
        context = {"signal_id": signal_id, "bot_id": bot.id}
        decision = guard_trade(db, self._services.ring, bot, intent)
        if not decision.allowed:
            update_trade(db, trade_id, status="failed", error_message=f"refused: "
                         f"{decision.reason}")
            TRADES.labels(method=route.method, status="refused").inc()
            log.warning("order refused: %s", decision.reason, extra=context)
            return OrderOutcome(trade_id, "refused", route.method, reason=decision.reason)
        direction = LONG if order.side == "long" else SHORT
        fallback_reason = route.reason
        if route.method == "swift":
            try:
                result = self._swift(bot, order, direction, keypair, state, trade_id,
                                     signal_id, deadline)
            except Exception as exc:  # no answer in time: the order may be out there
                return self._unknown(trade_id, "swift", exc, context)
            done = self._after_swift(bot, trade_id, order, result, context)
            if done is not None:
                return done
            fallback_reason = f"swift_{result.state}:{result.reason or ''}".rstrip(":")
            SWIFT_ORDERS_FALLBACK.labels(market=bot.market, reason=result.reason or
                                         result.state).inc()
            SWIFT_FALLBACK_REASONS.labels(reason=result.reason or result.state).inc()
        update_trade(db, trade_id, execution_method="legacy", fallback_reason=fallback_reason)
        try:
            legacy = ExecutorClient(self._services, ASK_TIMEOUT_S).place_and_take(
                LegacyOrder(keypair, keypair.pubkey(), bot.drift_subaccount_id,
                            bot.market_index, direction, order.base_amount, order.reduce_only,
                            state.market.oracle_price, self._slippage_bps),
                max(LEGACY_WAIT_S, deadline - time.monotonic()))
        except Exception as exc:  # no answer in time: the transaction may be out there
            return self._unknown(trade_id, "legacy", exc, context)
        return self._after_legacy(bot, trade_id, order, legacy, state, context)

    def _unknown(self, trade_id: str, method: str, exc: BaseException,
                 context: dict[str, Any]) -> OrderOutcome:
        """An order whose fate we could not learn: recorded as unknown, then reconciled."""
        reason = f"no_answer: {type(exc).__name__}"
        update_trade(self._services.db, trade_id, status="unknown", error_message=reason)
        TRADES.labels(method=method, status="unknown").inc()
        log.error("order outcome unknown (%s); it will be reconciled", reason, extra=context)
        return OrderOutcome(trade_id, "unknown", method, reason=reason)

    def _swift(self, bot: Bot, order: PlannedOrder, direction: int, keypair: Keypair,
               state: TradingState, trade_id: str, signal_id: str | None,
               deadline: float) -> SwiftResult:
        assert state.user is not None
        gateway = whereis(self._services.root, "swift_gateway", ASK_TIMEOUT_S)
        wait_s = max(1.0, deadline - time.monotonic())
        swift_order = SwiftOrder(keypair, keypair.pubkey(), bot.drift_subaccount_id,
                                 bot.market_index, bot.market, direction, order.base_amount,
                                 order.reduce_only, state.market.oracle_price, state.slot,
                                 state.user.perp(bot.market_index), trade_id,
                                 signal_id, bot.id)
        update_trade(self._services.db, trade_id, swift_status="submitted",
                     swift_submitted_at=datetime.now(UTC).replace(tzinfo=None))
        return request(gateway, Submit(swift_order, wait_s), wait_s + ASK_TIMEOUT_S)

    def _after_swift(self, bot: Bot, trade_id: str, order: PlannedOrder, result: SwiftResult,
                     context: dict[str, Any]) -> OrderOutcome | None:
        """Record a Swift result; None means: fall back to legacy (safe and allowed)."""
        db = self._services.db
        fields: dict[str, Any] = {"swift_order_id": result.swift_order_id,
                                  "swift_status": result.state}
        log.info("swift order %s", result.state,
                 extra={**context, "swift_order_id": result.swift_order_id})
        if result.state in ("filled", "partial"):
            self._record_fill(bot, trade_id, order, "swift", result.base_filled,
                              result.avg_price, fields | {
                                  "swift_filled_at": datetime.now(UTC).replace(tzinfo=None),
                                  "auction_duration_ms": result.fill_ms,
                                  "price_improvement": None if result.price_improvement_bps is
                                  None else round(result.price_improvement_bps / 100, 4)})
            status = "completed" if result.state == "filled" else "partial"
            return OrderOutcome(trade_id, status, "swift", result.base_filled, result.avg_price)
        if result.state == "unknown":
            update_trade(db, trade_id, status="unknown", error_message=result.reason, **fields)
            TRADES.labels(method="swift", status="unknown").inc()
            return OrderOutcome(trade_id, "unknown", "swift", reason=result.reason)
        if result.kind == "permanent" or not bot.swift_fallback_enabled:
            reason = result.reason or result.state
            update_trade(db, trade_id, status="failed", error_message=reason, **fields)
            TRADES.labels(method="swift", status="failed").inc()
            return OrderOutcome(trade_id, "failed", "swift", reason=reason)
        update_trade(db, trade_id, **fields)
        return None

    def _after_legacy(self, bot: Bot, trade_id: str, order: PlannedOrder, result: LegacyResult,
                      state: TradingState, context: dict[str, Any]) -> OrderOutcome:
        db = self._services.db
        log.info("on-chain order %s", result.state, extra=context)
        if result.state in ("filled", "partial"):
            self._record_fill(bot, trade_id, order, "legacy", result.base_filled,
                              result.avg_price, {"tx_signature": result.signature})
            status = "completed" if result.state == "filled" else "partial"
            return OrderOutcome(trade_id, status, "legacy", result.base_filled, result.avg_price)
        status = "unknown" if result.state == "unknown" else "failed"
        update_trade(db, trade_id, status=status, tx_signature=result.signature,
                     error_message=result.error or result.state)
        TRADES.labels(method="legacy", status=status).inc()
        return OrderOutcome(trade_id, status, "legacy", reason=result.error or result.state)

    def _record_fill(self, bot: Bot, trade_id: str, order: PlannedOrder, method: str,
                     filled: int, price: int | None, fields: dict[str, Any]) -> None:
        """Record the filled part; queue the remainder when it is above the minimum size."""
        db = self._services.db
        partial = filled < order.base_amount
        update_trade(db, trade_id, status="partial" if partial else "completed",
                     filled_size=Decimal(filled) / BASE,
                     price=None if price is None else Decimal(price) / PRICE, **fields)
        TRADES.labels(method=method, status="partial" if partial else "completed").inc()
        remainder = order.base_amount - filled
        if partial and remainder > 0:
            priority = priority_for(order.reduce_only)
            trade = db.fetchone("SELECT signal_id FROM bot_trades WHERE id = %s", (trade_id,))
            enqueue(db, NewJob(signal_id=trade["signal_id"] if trade else None,
                bot_id=bot.id, wallet_address=bot.wallet_address, market=bot.market,
                side=order.side, size=Decimal(remainder) / BASE, reduce_only=order.reduce_only,
                priority=priority.name, max_attempts=priority.max_attempts,
                sub_account_id=bot.drift_subaccount_id, original_trade_id=trade_id,
                original_execution_method=method, is_remainder=True,
                last_error=f"partial fill: {filled} of {order.base_amount}"))

    # --- retries (the fourth path) ---------------------------------------------------------

    def _queue_retry(self, bot: Bot, signal_id: str, order: PlannedOrder,
                     outcome: OrderOutcome, state: TradingState,
                     ticket: FlattenTicket | None) -> None:
        """Queue a failed order for the retry scheduler; an unknown outcome is queued with its
        starting position, to be reconciled after its order can no longer trade."""
        assert state.user is not None
        priority = priority_for(order.reduce_only)
        unknown = outcome.status == "unknown"
        enqueue(self._services.db, NewJob(
            bot_id=bot.id, wallet_address=bot.wallet_address, market=bot.market,
            side=order.side, size=Decimal(order.base_amount) / BASE,
            reduce_only=order.reduce_only, priority=priority.name,
            max_attempts=priority.max_attempts, signal_id=signal_id,
            sub_account_id=bot.drift_subaccount_id, original_trade_id=outcome.trade_id,
            original_execution_method=outcome.method, last_error=outcome.reason,
            payload={"flatten": ticket.__dict__} if ticket else None,
            outcome_unknown=unknown,
            position_before=state.user.perp(bot.market_index).base_asset_amount
            if unknown else None),
            delay_s=self._unknown_settle_s if unknown else priority.base_delay_s)
        log.info("order queued for retry (%s)", outcome.reason,
                 extra={"signal_id": signal_id, "bot_id": bot.id})

    def _retry(self, job: dict[str, Any], worker: str) -> str:
        """Run a claimed retry job: reconcile an unknown outcome first, then send what is left."""
        db = self._services.db
        job_id = job["id"]
        context = {"signal_id": job["signal_id"], "bot_id": self._bot_id}
        bot = get_bot(db, self._bot_id)
        if bot is None or (not bot.is_active and not job["reduce_only"]):
            settle_failed(db, job_id, worker, "bot paused")  # closes still run when paused
            return "failed"
        if job["signal_id"] and superseded(db, self._bot_id, job["signal_id"]):
            settle_failed(db, job_id, worker, "superseded by a newer signal")
            log.info("retry superseded by a newer signal", extra=context)
            return "failed"
        flatten = (job.get("webhook_payload") or {}).get("flatten")
        ticket = FlattenTicket(flatten["stop_id"], flatten["scope"]) if flatten else None
        SWIFT_RETRIES.inc()
        keypair = self._agent_keypair(bot)
        try:
            state = ExecutorClient(self._services, ASK_TIMEOUT_S).trading_state(
                keypair.pubkey(), bot.drift_subaccount_id, bot.market_index)
        except VENUE_READ_ERRORS as exc:  # nothing was sent: a failed attempt, not a crash
            step = after_failure(PRIORITIES[job["priority"]], job["attempts"] + 1,
                                 job["cooldown_retries"], True, self._rng)
            reason = f"venue_unreachable: {type(exc).__name__}"
            if step.action == "give_up":
                settle_failed(db, job_id, worker, reason)
                return "failed"
            settle_retry(db, job_id, worker, step.delay_s, reason, None,
                         cooldown=step.action == "cooldown")
            return "retry"
        if state.user is None:
            settle_failed(db, job_id, worker, "venue_user_missing")
            return "failed"
        held = state.user.perp(bot.market_index).base_asset_amount
        size = int(Decimal(job["size"]) * BASE)
        sign = 1 if job["side"] == "long" else -1
        if job["outcome_unknown"] and job["position_before_base"] is not None:
            moved = (held - int(job["position_before_base"])) * sign
            if moved >= size:  # the unknown attempt traded: record it, never send it again
                settle_done(db, job_id, worker)
                log.info("retry reconciled: the earlier attempt had filled", extra=context)
                return "done"
            live = self._swift_order_live(job, state.slot)
            if live is not None:  # its auction is not over: it may still be placed and fill
                settle_unknown(db, job_id, worker, RECHECK_S, live, count_attempt=False)
                return "unknown"
            size -= max(0, moved)
        if job["reduce_only"]:
            size = min(size, abs(held)) if held * sign < 0 else 0
            if size == 0:
                settle_done(db, job_id, worker)
                return "done"  # nothing left to close
        rules = MarketRules(state.market.min_order_size, state.market.step_size)
        size -= size % rules.step_size if rules.step_size else 0
        if size <= 0 or (size < rules.min_order_size and not job["reduce_only"]):
            settle_failed(db, job_id, worker, "remaining size below the minimum order")
            return "failed"
        gateway = whereis(self._services.root, "swift_gateway", ASK_TIMEOUT_S)
        swift_ok = use_swift_on_retry(job["swift_attempts"] or 0,
                                      bool(gateway.ask(IsHealthy(), timeout=ASK_TIMEOUT_S)))
        order = PlannedOrder(job["side"], size, job["reduce_only"], "retry",
                             dust=size < rules.min_order_size)
        if not mark_sending(db, job_id, worker, job["claimed_at"], "attempt", swift=False,
                            position_before=held):
            log.warning("retry job was claimed again meanwhile; not sending", extra=context)
            return "lost_claim"
        outcome = self._execute_order(bot, job["signal_id"], order,
                                      OrderOrigin.FLATTEN if ticket else OrderOrigin.RETRY,
                                      keypair, state, None if swift_ok else False, ticket)
        if (job["reduce_only"] and bot.is_subscriber and outcome.trade_id
                and outcome.status in ("completed", "partial")):
            notify_close(self._services, outcome.trade_id,
                         state.user.perp(bot.market_index), outcome.base_filled,
                         outcome.avg_price)
        if outcome.trade_id is not None:
            trade = db.fetchone("SELECT execution_method, fallback_reason, swift_status FROM"
                                " bot_trades WHERE id = %s", (outcome.trade_id,))
            if trade and trade["swift_status"]:
                swift_failed = trade["execution_method"] != "swift"
                count_swift_attempt(db, job_id, trade["fallback_reason"] if swift_failed
                                    else None)
        return self._settle_retry(bot, job, worker, outcome, context)

    def _swift_order_live(self, job: dict[str, Any], slot: int) -> str | None:
        """Why the job's last Swift order may still trade (its auction is not over, with what
        hash-status says about it), or None when it can no longer trade."""
        sub = last_swift_submission(self._services.db, self._bot_id, job["signal_id"],
                                    job["original_trade_id"])
        if sub is None or slot > sub["max_slot"] + SLOT_GRACE:
            return None
        gateway = whereis(self._services.root, "swift_gateway", ASK_TIMEOUT_S)
        placement = request(gateway, PlacementOf(sub["hash_key"]), ASK_TIMEOUT_S)
        return (f"swift order {placement.status} (order id {placement.order_id}),"
                f" auction open until slot {sub['max_slot']}")

    def _settle_retry(self, bot: Bot, job: dict[str, Any], worker: str, outcome: OrderOutcome,
                      context: dict[str, Any]) -> str:
        db = self._services.db
        if outcome.status in ("completed", "partial"):
            settle_done(db, job["id"], worker)
            return "done"
        reason = outcome.reason or outcome.status
        if outcome.status == "unknown":
            settle_unknown(db, job["id"], worker, self._unknown_settle_s, reason)
            return "unknown"
        if outcome.status == "refused":
            settle_failed(db, job["id"], worker, f"refused: {reason}")
            return "failed"
        step = after_failure(PRIORITIES[job["priority"]], job["attempts"] + 1,
                             job["cooldown_retries"], "unanswered" in reason or
                             "timeout" in reason or reason == "rpc_unreachable", self._rng)
        if step.action == "give_up":
            settle_failed(db, job["id"], worker, reason)
            self._pause(bot, f"retry gave up after {job['attempts'] + 1} attempts: {reason}")
            return "failed"
        settle_retry(db, job["id"], worker, step.delay_s, reason, None,
                     cooldown=step.action == "cooldown")
        log.info("retry failed (%s); next in %.1fs", reason, step.delay_s, extra=context)
        return "retry"

    @staticmethod
    def _no_order(reason: str) -> OrderOutcome:
        return OrderOutcome(None, "failed", "none", reason=reason)

    def _pause(self, bot: Bot, reason: str) -> None:
        self._services.db.execute(
            "UPDATE trading_bots SET is_active = false, paused_reason = %s, paused_at = now(),"
            " updated_at = now() WHERE id = %s", (reason[:500], bot.id))
        log.warning("bot paused: %s", reason, extra={"bot_id": bot.id})

    # --- keys ----------------------------------------------------------------------------------

    def _agent_keypair(self, bot: Bot) -> Keypair:
        """The agent key (legacy server-key path), opened once per actor life."""
        if self._keypair is None:
            envelope = legacy_agent_envelope(self._services.db, bot.wallet_address)
            if envelope is None:
                raise LookupError(f"wallet {bot.wallet_address} has no agent key")
            secret = open_agent_privkey_legacy(self._services.ring, bot.wallet_address,
                                               envelope)
            register_agent_keypair(secret)  # no later log line can carry it, nor its seed
            self._keypair = Keypair.from_bytes(secret)
        return self._keypair
