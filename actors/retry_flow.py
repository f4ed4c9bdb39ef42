"""Retries (the fourth execution path) and what a restart finds half done.

A failed or unknown order becomes a retry job; a claimed job is run by the bot's own actor, so
retries keep the bot's order. An unknown outcome is reconciled before anything is sent again:
once its order can no longer trade, the venue's position says whether it filled.

After a crash, a signal left `processing`:
- with an order that may have left (a pending trade): each such order becomes a retry job of
  unknown outcome, and the signal ends; a flip cut with only its close out runs again (from a
  fresh read: its open) once that close's job is done, unless it went stale meanwhile;
- with no order sent, or only a completed close (a flip cut between its close and its open):
  nothing of it is on the wire, so it runs again from a fresh read (the position then says what
  is left to do), unless it is older than SIGNAL_STALE_S (then it fails with that reason; closes
  never go stale: a close that never happens is the worst outcome);
- with an opening order already filled: it is finished as it stands.
A source signal's copies are created (once) in every case.

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
from typing import Any

from actors.bot_context import ASK_TIMEOUT_S, BASE, PRICE, VENUE_READ_ERRORS, BotContext
from actors.copies import route_copies, snapshots
from actors.messages import SLOT_GRACE, IsHealthy, PlacementOf
from actors.order_exec import OrderOutcome, OrderRequest, execute_order, no_order
from actors.profit_share import notify_close
from custody.signing_keys import SigningRefused
from custody.trade_guard import REASON_GUARD_UNAVAILABLE, check_retry_job
from observability.trading_metrics import SWIFT_RETRIES
from security.emergency_stop import FlattenTicket, OrderIntent, OrderKind, OrderOrigin
from storage.bots import Bot, get_bot
from storage.retry_queue import (
    NewJob,
    count_swift_attempt,
    enqueue,
    mark_sending,
    release_claim,
    settle_done,
    settle_failed,
    settle_retry,
    settle_unknown,
)
from storage.signals import (
    finish_signal,
    interrupted_signals,
    reopen_interrupted_flip,
    requeue_signal,
    superseded,
)
from storage.trades import (
    filled_closes_without_share,
    last_legacy_send,
    last_swift_submission,
    signal_trades,
    swift_submissions,
    trade_swift_summary,
    update_trade,
)
from trading.alerts import never_stale
from trading.retry_policy import PRIORITIES, RetryRoute, after_failure, priority_for, retry_route
from trading.routing import choose_route
from trading.sizing import MarketRules, PlannedOrder
from venue.positions import PerpPositionView, UserSnapshot
from venue.tx_status import TxState

log = logging.getLogger(__name__)

SIGNING_REFUSED_WAIT_S = 60.0  # a retry that may not sign (no grant) looks again this often
GUARD_UNAVAILABLE_WAIT_S = 5.0  # the guard could not read what it checks (a database hiccup)
RECHECK_S = 5.0  # an unknown outcome whose Swift auction is still open is looked at again


def queue_retry(ctx: BotContext, bot: Bot, signal_id: str, order: PlannedOrder,
                outcome: OrderOutcome, user: UserSnapshot, ticket: FlattenTicket | None) -> None:
    """Queue a failed order for the retry scheduler; an unknown outcome is queued with its
    starting position, to be reconciled after its order can no longer trade."""
    priority = priority_for(order.reduce_only)
    unknown = outcome.status == "unknown"
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


# --- after a restart ----------------------------------------------------------------------------


def resume_interrupted(ctx: BotContext, stale_s: float) -> None:
    """Settle every signal of this bot a crash left `processing` (see the module docstring)."""
    bot = get_bot(ctx.services.db, ctx.bot_id)
    assert bot is not None
    for row in interrupted_signals(ctx.services.db, ctx.bot_id):
        _resume_one(ctx, bot, row, stale_s)


def _resume_one(ctx: BotContext, bot: Bot, row: dict[str, Any], stale_s: float) -> None:
    db = ctx.services.db
    context = {"signal_id": row["id"], "bot_id": bot.id}
    parsed = row["parsed"] or {}
    age = time.time() - row["received_at"].timestamp()
    stale = age > stale_s and not never_stale(parsed)
    if row["source"] == "webhook" and stale:
        log.warning("no copies made of a stale interrupted signal", extra=context)
    elif row["source"] == "webhook":
        try:
            route_copies(ctx, row, snapshots(ctx, bot, row)[1])
        except VENUE_READ_ERRORS as exc:  # copies are made when the signal runs again
            log.warning("copies not made yet (%s)", type(exc).__name__, extra=context)
    if bot.is_subscriber:  # closes that filled before the crash still owe their share
        for trade in filled_closes_without_share(db, row["id"]):
            notify_close(ctx.services, trade["id"], PerpPositionView(
                bot.market_index, base_asset_amount=int(trade["position_before_base"]),
                quote_entry_amount=int(trade["entry_quote_before"])),
                int(trade["filled_size"] * BASE), int(trade["price"] * PRICE))
    trades = signal_trades(db, row["id"])
    pending = [t for t in trades if t["status"] == "pending"]
    opened = [t for t in trades if not t["reduce_only"] and t["status"] in
              ("completed", "partial", "unknown")]
    if pending:
        _reconcile_pending(ctx, bot, row, pending)
        return
    if opened or any(t["status"] == "unknown" for t in trades):
        finish_signal(db, row["id"], "done" if not any(t["status"] == "unknown" for t in trades)
                      else "partial", {"interrupted": True}, "interrupted by a restart")
        return
    if stale:
        finish_signal(db, row["id"], "failed", {"interrupted": True, "stale": True},
                      f"stale: interrupted by a restart {age:.0f} s after it arrived"
                      f" (SIGNAL_STALE_S={stale_s:.0f})")
        log.warning("interrupted signal too old to run again", extra=context)
        return
    requeue_signal(db, row["id"])  # nothing of it is on the wire: it runs again, in order
    log.warning("interrupted signal runs again from a fresh read", extra=context)


def _reconcile_pending(ctx: BotContext, bot: Bot, row: dict[str, Any],
                       pending: list[dict[str, Any]]) -> None:
    """Each order that may have left becomes a retry job of unknown outcome; the signal ends."""
    db = ctx.services.db
    for trade in pending:
        priority = priority_for(trade["reduce_only"])
        enqueue(db, NewJob(
            bot_id=bot.id, wallet_address=bot.wallet_address, market=bot.market,
            side=trade["side"], size=trade["size"], reduce_only=trade["reduce_only"],
            priority=priority.name, max_attempts=priority.max_attempts,
            signal_id=row["id"], sub_account_id=bot.drift_subaccount_id,
            original_trade_id=trade["id"],
            original_execution_method=trade["execution_method"],
            last_error="interrupted by a restart", outcome_unknown=True,
            position_before=trade["position_before_base"],
            swift_attempts=swift_submissions(db, trade["id"])),
            delay_s=ctx.unknown_settle_s, ring=ctx.services.ring, holder=ctx.services.holder,
            epoch=ctx.lease_epoch)
        update_trade(db, trade["id"], status="unknown",
                     error_message="interrupted by a restart; reconciling")
    finish_signal(db, row["id"], "failed", {"interrupted": True, "reconciling": len(pending)},
                  "interrupted by a restart")
    log.warning("interrupted signal handed to reconciliation (%d order(s))", len(pending),
                extra={"signal_id": row["id"], "bot_id": bot.id})


# --- running a retry job ------------------------------------------------------------------------


def run_retry(ctx: BotContext, job: dict[str, Any], worker: str) -> str:
    """Run a claimed retry job: reconcile an unknown outcome first, then send what is left."""
    db = ctx.services.db
    job_id = job["id"]
    context = {"signal_id": job["signal_id"], "bot_id": ctx.bot_id}
    bot = get_bot(db, ctx.bot_id)
    flatten = (job.get("webhook_payload") or {}).get("flatten")
    # a paused bot's closes still run when the system paused it (or a flatten sent them);
    # an operator's pause stops everything
    if bot is None or (not bot.is_active and not (
            job["reduce_only"] and (bot.closes_only or flatten))):
        settle_failed(db, job_id, worker, "bot paused")
        return "failed"
    if job["signal_id"] and superseded(db, ctx.bot_id, job["signal_id"]):
        settle_failed(db, job_id, worker, "superseded by a newer signal")
        log.info("retry superseded by a newer signal", extra=context)
        return "failed"
    ticket = FlattenTicket(flatten["stop_id"], flatten["scope"]) if flatten else None
    origin = OrderOrigin.FLATTEN if ticket else OrderOrigin.RETRY
    intent = OrderIntent(origin, OrderKind.CLOSE if job["reduce_only"] else OrderKind.OPEN,
                         bool(job["reduce_only"]), flatten_ticket=ticket)
    verdict = check_retry_job(db, ctx.services.ring, bot, job, intent,
                              state_dir=str(ctx.services.settings["STATE_DIR"]))
    if verdict.reason == REASON_GUARD_UNAVAILABLE:  # the guard could not tell: try again
        release_claim(db, job_id, worker, GUARD_UNAVAILABLE_WAIT_S, f"refused: {verdict.reason}")
        return "retry"
    if not verdict.allowed:  # an unauthenticated row: nothing of it is sent or reconciled
        settle_failed(db, job_id, worker, f"refused: {verdict.reason}")
        return "failed"
    try:
        keypair = ctx.keypair(bot, "retry")
    except SigningRefused as exc:  # no usable grant (V3) or the legacy path is off: it waits
        release_claim(db, job_id, worker, SIGNING_REFUSED_WAIT_S,
                      f"signing_refused: {exc.reason}")
        log.warning("retry waits: signing refused (%s)", exc.reason, extra=context)
        return "retry"
    SWIFT_RETRIES.inc()
    # a transaction that may still land is waited for; asked before the read, so that one
    # that landed is in it
    landing = _transaction_live(ctx, job) if job["outcome_unknown"] else None
    if landing is not None:
        settle_unknown(db, job_id, worker, RECHECK_S, landing, count_attempt=False)
        return "unknown"
    try:  # reconciliation needs the venue as it is now: a read sent after this moment
        snapshot = ctx.venue.snapshot(bot.market_index)
        user = ctx.venue.user(keypair.pubkey(), bot.drift_subaccount_id, time.monotonic())
    except VENUE_READ_ERRORS as exc:  # nothing was sent: a failed attempt, not a crash
        step = after_failure(PRIORITIES[job["priority"]], job["attempts"] + 1,
                             job["cooldown_retries"], True, ctx.rng)
        reason = f"venue_unreachable: {type(exc).__name__}"
        if step.action == "give_up":
            settle_failed(db, job_id, worker, reason)
            return "failed"
        settle_retry(db, job_id, worker, step.delay_s, reason, None,
                     cooldown=step.action == "cooldown")
        return "retry"
    if user is None:
        settle_failed(db, job_id, worker, "venue_user_missing")
        return "failed"
    held = user.perp(bot.market_index).base_asset_amount
    size = int(Decimal(job["size"]) * BASE)
    sign = 1 if job["side"] == "long" else -1
    if job["outcome_unknown"] and job["position_before_base"] is not None:
        _end_dead_attempts(db, job)
        moved = (held - int(job["position_before_base"])) * sign
        if moved >= size:  # the unknown attempt traded: record it, never send it again
            _done(ctx, job, worker)
            log.info("retry reconciled: the earlier attempt had filled", extra=context)
            return "done"
        live = _swift_order_live(ctx, job, ctx.venue.now().slot)
        if live is not None:  # its auction is not over: it may still be placed and fill
            settle_unknown(db, job_id, worker, RECHECK_S, live, count_attempt=False)
            return "unknown"
        size -= max(0, moved)
    if job["reduce_only"]:
        size = min(size, abs(held)) if held * sign < 0 else 0
        if size == 0:
            _done(ctx, job, worker)
            return "done"  # nothing left to close
    if not job["reduce_only"]:  # re-capped at send: the policy's limit less what is held
        capped = _policy_cap(bot, held, sign, snapshot.market.oracle_price)
        if capped < size:
            log.warning("retry re-capped from %d to %d (policy max position, position held)",
                        size, max(0, capped), extra=context)
            size = max(0, capped)
    rules = MarketRules(snapshot.market.min_order_size, snapshot.market.step_size)
    size -= size % rules.step_size if rules.step_size else 0
    if size <= 0 or (size < rules.min_order_size and not job["reduce_only"]):
        settle_failed(db, job_id, worker, "remaining size below the minimum order")
        return "failed"
    swift_before = job["swift_attempts"] or 0
    order = PlannedOrder(job["side"], size, job["reduce_only"], "retry",
                         dust=size < rules.min_order_size)
    route = _retry_route(ctx, bot, order, swift_before)
    if route.wait:  # no fallback, and Swift is marked unhealthy: a failed attempt, nothing sent
        return _settle(ctx, bot, job, worker, no_order("swift_unhealthy"), context)
    if not mark_sending(db, job_id, worker, job["claimed_at"], "attempt", swift=False,
                        position_before=held):
        log.warning("retry job was claimed again meanwhile; not sending", extra=context)
        return "lost_claim"
    outcome = execute_order(ctx, OrderRequest(
        bot, job["signal_id"], order, origin, keypair, user, snapshot, snapshot.market.oracle_price,
        route.use_swift, ticket, swift_attempts_before=swift_before))
    if (job["reduce_only"] and bot.is_subscriber and outcome.trade_id
            and outcome.status in ("completed", "partial")):
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


def _done(ctx: BotContext, job: dict[str, Any], worker: str) -> None:
    """Settle the job done. If it was the close of a flip a restart cut before its open, the
    flip goes back to its bot's backlog first (so that nothing looks settled in between)."""
    if job["reduce_only"] and job["signal_id"] and reopen_interrupted_flip(
            ctx.services.db, job["signal_id"], job["id"],
            ctx.services.settings["SIGNAL_STALE_S"]):
        log.warning("the close of a flip cut by a restart is done: the flip runs again from a"
                    " fresh read", extra={"signal_id": job["signal_id"], "bot_id": ctx.bot_id})
    settle_done(ctx.services.db, job["id"], worker)


def _end_dead_attempts(db: Any, job: dict[str, Any]) -> None:
    """A trade of the job's signal still pending now was sent by an attempt whose process died
    (a bot's orders run one at a time on its actor, and each ends its own trade row): it becomes
    unknown, as the job reconciles it, instead of staying pending for good."""
    if job["signal_id"] is None:
        return
    for trade in signal_trades(db, job["signal_id"]):
        if trade["status"] == "pending":
            update_trade(db, trade["id"], status="unknown",
                         error_message="interrupted by a restart; its retry job reconciles it")


def _swift_error(db: Any, outcome: OrderOutcome) -> str | None:
    """Why Swift failed for this attempt's trade (None when Swift traded it)."""
    if outcome.method == "swift" and outcome.status in ("completed", "partial"):
        return None
    trade = trade_swift_summary(db, outcome.trade_id) if outcome.trade_id else None
    if trade and trade["execution_method"] != "swift" and trade["fallback_reason"]:
        return str(trade["fallback_reason"])
    return outcome.reason or outcome.status


def _swift_order_live(ctx: BotContext, job: dict[str, Any], slot: int) -> str | None:
    """Why the job's last Swift order may still trade (its auction is not over, with what
    hash-status says about it), or None when it can no longer trade."""
    sub = last_swift_submission(ctx.services.db, ctx.bot_id, job["signal_id"],
                                job["original_trade_id"])
    if sub is None or slot > sub["max_slot"] + SLOT_GRACE:
        return None
    placement = ctx.gateway.ask(PlacementOf(sub["hash_key"]), ASK_TIMEOUT_S)
    return (f"swift order {placement.status} (order id {placement.order_id}),"
            f" auction open until slot {sub['max_slot']}")


def _transaction_live(ctx: BotContext, job: dict[str, Any]) -> str | None:
    """Why the job's last on-chain order of unrecorded outcome may still land (the chain has
    no verdict on it and its blockhash is still valid), or None when it never can again."""
    sent = last_legacy_send(ctx.services.db, ctx.bot_id, job["signal_id"],
                            job["original_trade_id"])
    if sent is None:
        return None
    signature, last_valid = sent["tx_signature"], sent["tx_last_valid_block_height"]
    try:
        verdict = ctx.executor.verdict(signature, last_valid)
    except VENUE_READ_ERRORS as exc:
        return f"transaction {signature} not looked up ({type(exc).__name__})"
    if verdict.state is not TxState.PENDING:
        return None
    return f"transaction {signature} may still land (until block height {last_valid})"


def _settle(ctx: BotContext, bot: Bot, job: dict[str, Any], worker: str,
            outcome: OrderOutcome, context: dict[str, Any]) -> str:
    db = ctx.services.db
    if outcome.status in ("completed", "partial"):
        _done(ctx, job, worker)
        return "done"
    reason = outcome.reason or outcome.status
    if outcome.status == "unknown":
        settle_unknown(db, job["id"], worker, ctx.unknown_settle_s, reason)
        return "unknown"
    if outcome.status == "refused":
        settle_failed(db, job["id"], worker, f"refused: {reason}")
        return "failed"
    step = after_failure(PRIORITIES[job["priority"]], job["attempts"] + 1,
                         job["cooldown_retries"], "unanswered" in reason or
                         "timeout" in reason or reason == "rpc_unreachable", ctx.rng)
    if step.action == "give_up":
        settle_failed(db, job["id"], worker, reason)
        ctx.pause(bot, f"retry gave up after {job['attempts'] + 1} attempts: {reason}")
        return "failed"
    settle_retry(db, job["id"], worker, step.delay_s, reason, None,
                 cooldown=step.action == "cooldown")
    log.info("retry failed (%s); next in %.1fs", reason, step.delay_s, extra=context)
    return "retry"
