"""Retries (the fourth execution path): a failed or unknown order, sent again or reconciled.

A failed or unknown order becomes a retry job; a claimed job is run by the bot's own actor, so
retries keep the bot's order. An unknown outcome is reconciled before anything is sent again:
once its order can no longer trade, the venue's position says whether it filled. What a restart
finds half done (signals left `processing`) is settled by actors.restart_flow, re-exported here.

A retry whose attempt a crash cut is claimed again once its lease runs out, its outcome unknown;
the attempt's trade row, left pending, becomes unknown as the job reconciles it.

The same holds when another daemon took the bot over (its lease epoch changed): what the former
holder left `processing` or claimed is settled the same way by the new holder, since every
send was fenced by the lease. A trade whose send the fence refused is left pending with nothing
sent: its reconciliation finds the position unmoved and no order that may still trade, and
sends what is left once. Before anything is resent, an unknown outcome's last Swift order must
be past its auction (hash-status while it is open), and its last on-chain order must have a
verdict or an expired blockhash (both recorded by the fence right before they left).

A retry goes on-chain once its trade's Swift is used up or failing only when a fallback is
allowed (the bot's and SWIFT_FALLBACK_ENABLED); without one it stays on Swift, closes included,
and ends failed with the bot paused by the system (trading.retry_policy.retry_route).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from enum import StrEnum
from typing import Any

from actors.bot_context import ASK_TIMEOUT_S, VENUE_READ_ERRORS, BotContext
from actors.messages import IsHealthy, PlacementOf
from actors.order_exec import OrderOutcome, OrderRequest, OrderStatus, execute_order, no_order
from actors.profit_share import notify_close
from actors.restart_flow import resume_interrupted as resume_interrupted  # actors.bot calls it here
from actors.swift_signing import SLOT_GRACE
from custody.signing_keys import SigningRefused
from custody.trade_guard import REASON_GUARD_UNAVAILABLE, check_retry_job
from observability.trading_metrics import SWIFT_RETRIES
from security.emergency_stop import FlattenTicket, OrderIntent, OrderKind, OrderOrigin
from storage.bots import Bot, get_bot
from storage.retry_queue import (
    NewJob,
    RetryJob,
    count_swift_attempt,
    enqueue,
    mark_sending,
    release_claim,
    settle_done,
    settle_failed,
    settle_retry,
    settle_unknown,
)
from storage.signals import reopen_interrupted_flip, superseded
from storage.trades import (
    TradeStatus,
    fallback_reason,
    last_legacy_send,
    last_swift_submission,
    signal_trades,
    update_trade,
)
from trading.retry_policy import PRIORITIES, RetryRoute, after_failure, priority_for, retry_route
from trading.routing import choose_route
from trading.sizing import MarketRules, PlannedOrder
from venue.positions import UserSnapshot
from venue.precision import BASE, PRICE
from venue.tx_status import TxState

log = logging.getLogger(__name__)

SIGNING_REFUSED_WAIT_S = 60.0  # a retry that may not sign (no grant) looks again this often
GUARD_UNAVAILABLE_WAIT_S = 5.0  # the guard could not read what it checks (a database hiccup)
RECHECK_S = 5.0  # an unknown outcome whose Swift auction is still open is looked at again


class RetryRun(StrEnum):
    """What one run of a claimed retry job came to (run_retry's answer), as it was settled."""

    DONE = "done"  # its trade happened (now, or earlier as reconciliation found)
    FAILED = "failed"  # given up
    RETRY = "retry"  # due again later (a failed attempt, or it may not run yet)
    UNKNOWN = "unknown"  # its attempt's fate is unknown: reconciled when due again
    LOST_CLAIM = "lost_claim"  # claimed again meanwhile: left to the new claim, nothing sent


_FILLED = (OrderStatus.COMPLETED, OrderStatus.PARTIAL)  # an order that traded


def queue_retry(ctx: BotContext, bot: Bot, signal_id: str, order: PlannedOrder,
                outcome: OrderOutcome, user: UserSnapshot, ticket: FlattenTicket | None) -> None:
    """Queue a failed order for the retry scheduler; an unknown outcome is queued with its
    starting position, to be reconciled after its order can no longer trade."""
    priority = priority_for(order.reduce_only)
    unknown = outcome.status == OrderStatus.UNKNOWN
    enqueue(ctx.services.db, NewJob(
        bot_id=bot.id, wallet_address=bot.wallet_address, market=bot.market,
        side=order.side, size=Decimal(order.base_amount) / BASE,
        reduce_only=order.reduce_only, priority=priority.name,
        max_attempts=priority.max_attempts, signal_id=signal_id,
        sub_account_id=bot.drift_subaccount_id, original_trade_id=outcome.trade_id,
        original_execution_method=outcome.method, last_error=outcome.reason,
        payload={"flatten": ticket.__dict__} if ticket else None,
        outcome_unknown=unknown,
        position_before=user.perp(bot.market_index).base_asset_amount if unknown else None,
        swift_attempts=outcome.swift_attempts),
        delay_s=ctx.unknown_settle_s if unknown else priority.base_delay_s,
        ring=ctx.services.ring, holder=ctx.services.holder, epoch=ctx.lease_epoch)
    log.info("order queued for retry (%s)", outcome.reason,
             extra={"signal_id": signal_id, "bot_id": bot.id})


# --- running a retry job ------------------------------------------------------------------------


def run_retry(ctx: BotContext, job: RetryJob, worker: str) -> RetryRun:
    """Run a claimed retry job: reconcile an unknown outcome first, then send what is left."""
    db = ctx.services.db
    job_id = job.id
    context = {"signal_id": job.signal_id, "bot_id": ctx.bot_id}
    bot = get_bot(db, ctx.bot_id)
    flatten = job.flatten
    # a paused bot's closes still run when the system paused it (or a flatten sent them);
    # an operator's pause stops everything
    if bot is None or (not bot.is_active and not (
            job.reduce_only and (bot.closes_only or flatten))):
        settle_failed(db, job_id, worker, "bot paused")
        return RetryRun.FAILED
    if job.signal_id and superseded(db, ctx.bot_id, job.signal_id):
        settle_failed(db, job_id, worker, "superseded by a newer signal")
        log.info("retry superseded by a newer signal", extra=context)
        return RetryRun.FAILED
    ticket = FlattenTicket(flatten["stop_id"], flatten["scope"]) if flatten else None
    origin = OrderOrigin.FLATTEN if ticket else OrderOrigin.RETRY
    intent = OrderIntent(origin, OrderKind.CLOSE if job.reduce_only else OrderKind.OPEN,
                         job.reduce_only, flatten_ticket=ticket)
    verdict = check_retry_job(db, ctx.services.ring, bot, job, intent,
                              state_dir=str(ctx.services.settings.state_dir))
    if verdict.reason == REASON_GUARD_UNAVAILABLE:  # the guard could not tell: try again
        release_claim(db, job_id, worker, GUARD_UNAVAILABLE_WAIT_S, f"refused: {verdict.reason}")
        return RetryRun.RETRY
    if not verdict.allowed:  # an unauthenticated row: nothing of it is sent or reconciled
        settle_failed(db, job_id, worker, f"refused: {verdict.reason}")
        return RetryRun.FAILED
    try:
        keypair = ctx.keypair(bot, "retry")
    except SigningRefused as exc:  # no usable grant (V3) or the legacy path is off: it waits
        release_claim(db, job_id, worker, SIGNING_REFUSED_WAIT_S,
                      f"signing_refused: {exc.reason}")
        log.warning("retry waits: signing refused (%s)", exc.reason, extra=context)
        return RetryRun.RETRY
    SWIFT_RETRIES.inc()
    # a transaction that may still land is waited for; asked before the read, so that one
    # that landed is in it
    landing = _transaction_live(ctx, job) if job.outcome_unknown else None
    if landing is not None:
        settle_unknown(db, job_id, worker, RECHECK_S, landing, count_attempt=False)
        return RetryRun.UNKNOWN
    try:  # reconciliation needs the venue as it is now: a read sent after this moment
        snapshot = ctx.venue.snapshot(bot.market_index)
        user = ctx.venue.user(keypair.pubkey(), bot.drift_subaccount_id, time.monotonic())
    except VENUE_READ_ERRORS as exc:  # nothing was sent: a failed attempt, not a crash
        step = after_failure(PRIORITIES[job.priority], job.attempts + 1,
                             job.cooldown_retries, True, ctx.rng)
        reason = f"venue_unreachable: {type(exc).__name__}"
        if step.action == "give_up":
            settle_failed(db, job_id, worker, reason)
            return RetryRun.FAILED
        settle_retry(db, job_id, worker, step.delay_s, reason, None,
                     cooldown=step.action == "cooldown")
        return RetryRun.RETRY
    if user is None:
        settle_failed(db, job_id, worker, "venue_user_missing")
        return RetryRun.FAILED
    held = user.perp(bot.market_index).base_asset_amount
    size = int(job.size * BASE)
    sign = 1 if job.side == "long" else -1
    if job.outcome_unknown and job.position_before_base is not None:
        _end_dead_attempts(db, job)
        moved = (held - job.position_before_base) * sign
        if moved >= size:  # the unknown attempt traded: record it, never send it again
            _done(ctx, job, worker)
            log.info("retry reconciled: the earlier attempt had filled", extra=context)
            return RetryRun.DONE
        live = _swift_order_live(ctx, job, ctx.venue.now().slot)
        if live is not None:  # its auction is not over: it may still be placed and fill
            settle_unknown(db, job_id, worker, RECHECK_S, live, count_attempt=False)
            return RetryRun.UNKNOWN
        size -= max(0, moved)
    if job.reduce_only:
        size = min(size, abs(held)) if held * sign < 0 else 0
        if size == 0:
            _done(ctx, job, worker)
            return RetryRun.DONE  # nothing left to close
    if not job.reduce_only:  # re-capped at send: the policy's limit less what is held
        capped = _policy_cap(bot, held, sign, snapshot.market.oracle_price)
        if capped < size:
            log.warning("retry re-capped from %d to %d (policy max position, position held)",
                        size, max(0, capped), extra=context)
            size = max(0, capped)
    rules = MarketRules(snapshot.market.min_order_size, snapshot.market.step_size)
    size -= size % rules.step_size if rules.step_size else 0
    if size <= 0 or (size < rules.min_order_size and not job.reduce_only):
        settle_failed(db, job_id, worker, "remaining size below the minimum order")
        return RetryRun.FAILED
    swift_before = job.swift_attempts
    order = PlannedOrder(job.side, size, job.reduce_only, "retry",
                         dust=size < rules.min_order_size)
    route = _retry_route(ctx, bot, order, swift_before)
    if route.wait:  # no fallback, and Swift is marked unhealthy: a failed attempt, nothing sent
        return _settle(ctx, bot, job, worker, no_order("swift_unhealthy"), context)
    if not mark_sending(db, job_id, worker, job.claimed_at, "attempt", swift=False,
                        position_before=held):
        log.warning("retry job was claimed again meanwhile; not sending", extra=context)
        return RetryRun.LOST_CLAIM
    outcome = execute_order(ctx, OrderRequest(
        bot, job.signal_id, order, origin, keypair, user, snapshot, snapshot.market.oracle_price,
        route.use_swift, ticket, swift_attempts_before=swift_before))
    if (job.reduce_only and bot.is_subscriber and outcome.trade_id
            and outcome.status in _FILLED):
        notify_close(ctx.services, outcome.trade_id, user.perp(bot.market_index),
                     outcome.base_filled, outcome.avg_price)
    if outcome.swift_attempts and outcome.trade_id is not None:
        count_swift_attempt(db, job_id, _swift_error(db, outcome), outcome.swift_attempts)
    return _settle(ctx, bot, job, worker, outcome, context)


def _retry_route(ctx: BotContext, bot: Bot, order: PlannedOrder, swift_attempts: int) -> RetryRoute:
    """How this attempt is sent (trading.retry_policy.retry_route), from the live flags, the
    bot's fallback setting and Swift's health."""
    flags = ctx.current_flags()
    wanted = choose_route(flags, bot_id=bot.id, bot_swift_enabled=bot.swift_enabled,
                          market=bot.market, swift_healthy=True, dust=order.dust,
                          critical=order.reduce_only).method == "swift"
    return retry_route(fallback_allowed=flags.fallback_enabled and bot.swift_fallback_enabled,
                       swift_wanted=wanted,
                       swift_healthy=bool(ctx.gateway.ask(IsHealthy(), ASK_TIMEOUT_S)),
                       swift_attempts=swift_attempts, max_retries=ctx.swift_max_retries,
                       retry_with_swift=flags.retry_with_swift)


def _policy_cap(bot: Bot, held: int, sign: int, oracle_price: int) -> int:
    """The largest base amount (1e9) an opening retry may add in its direction: the bot's
    max position (USD, policy-MAC'd) at the oracle price, less what is already held that way."""
    if oracle_price <= 0:
        return 0
    max_base = int(Decimal(bot.max_position_size) * PRICE * BASE / Decimal(oracle_price))
    return max_base - held * sign


def _done(ctx: BotContext, job: RetryJob, worker: str) -> None:
    """Settle the job done. If it was the close of a flip a restart cut before its open, the
    flip goes back to its bot's backlog first (so that nothing looks settled in between)."""
    if job.reduce_only and job.signal_id and reopen_interrupted_flip(
            ctx.services.db, job.signal_id, job.id,
            ctx.services.settings.signal_stale_s):
        log.warning("the close of a flip cut by a restart is done: the flip runs again from a"
                    " fresh read", extra={"signal_id": job.signal_id, "bot_id": ctx.bot_id})
    settle_done(ctx.services.db, job.id, worker)


def _end_dead_attempts(db: Any, job: RetryJob) -> None:
    """A trade of the job's signal still pending now was sent by an attempt whose process died
    (a bot's orders run one at a time on its actor, and each ends its own trade row): it becomes
    unknown, as the job reconciles it, instead of staying pending for good."""
    if job.signal_id is None:
        return
    for trade in signal_trades(db, job.signal_id):
        if trade.status == TradeStatus.PENDING:
            update_trade(db, trade.id, status=TradeStatus.UNKNOWN,
                         error_message="interrupted by a restart; its retry job reconciles it")


def _swift_error(db: Any, outcome: OrderOutcome) -> str | None:
    """Why Swift failed for this attempt's trade (None when Swift traded it)."""
    if outcome.method == "swift" and outcome.status in _FILLED:
        return None
    reason = fallback_reason(db, outcome.trade_id) if outcome.trade_id else None
    if reason:
        return reason
    return outcome.reason or outcome.status


def _swift_order_live(ctx: BotContext, job: RetryJob, slot: int) -> str | None:
    """Why the job's last Swift order may still trade (its auction is not over, with what
    hash-status says about it), or None when it can no longer trade."""
    sub = last_swift_submission(ctx.services.db, ctx.bot_id, job.signal_id,
                                job.original_trade_id)
    if sub is None or slot > sub.max_slot + SLOT_GRACE:
        return None
    placement = ctx.gateway.ask(PlacementOf(sub.hash_key), ASK_TIMEOUT_S)
    return (f"swift order {placement.status} (order id {placement.order_id}),"
            f" auction open until slot {sub.max_slot}")


def _transaction_live(ctx: BotContext, job: RetryJob) -> str | None:
    """Why the job's last on-chain order of unrecorded outcome may still land (the chain has
    no verdict on it and its blockhash is still valid), or None when it never can again."""
    sent = last_legacy_send(ctx.services.db, ctx.bot_id, job.signal_id,
                            job.original_trade_id)
    if sent is None:
        return None
    signature, last_valid = sent.tx_signature, sent.last_valid_block_height
    try:
        verdict = ctx.executor.verdict(signature, last_valid)
    except VENUE_READ_ERRORS as exc:
        return f"transaction {signature} not looked up ({type(exc).__name__})"
    if verdict.state is not TxState.PENDING:
        return None
    return f"transaction {signature} may still land (until block height {last_valid})"


def _settle(ctx: BotContext, bot: Bot, job: RetryJob, worker: str,
            outcome: OrderOutcome, context: dict[str, Any]) -> RetryRun:
    db = ctx.services.db
    if outcome.status in _FILLED:
        _done(ctx, job, worker)
        return RetryRun.DONE
    reason = outcome.reason or outcome.status
    if outcome.status == OrderStatus.UNKNOWN:
        settle_unknown(db, job.id, worker, ctx.unknown_settle_s, reason)
        return RetryRun.UNKNOWN
    if outcome.status == OrderStatus.REFUSED:
        settle_failed(db, job.id, worker, f"refused: {reason}")
        return RetryRun.FAILED
    step = after_failure(PRIORITIES[job.priority], job.attempts + 1,
                         job.cooldown_retries, "unanswered" in reason or
                         "timeout" in reason or reason == "rpc_unreachable", ctx.rng)
    if step.action == "give_up":
        settle_failed(db, job.id, worker, reason)
        ctx.pause(bot, f"retry gave up after {job.attempts + 1} attempts: {reason}")
        return RetryRun.FAILED
    settle_retry(db, job.id, worker, step.delay_s, reason, None,
                 cooldown=step.action == "cooldown")
    log.info("retry failed (%s); next in %.1fs", reason, step.delay_s, extra=context)
    return RetryRun.RETRY
