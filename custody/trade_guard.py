"""The caller-facing pre-trade gate: every execution path calls `guard_trade` before signing.

It loads the global and the wallet's emergency stop flags from the database, runs the pure
`security.gate.pre_trade_check` (stop first, then the policy HMAC), and for a refusal counts
`policy_refusals_total{reason}` and stores a `trade_refusals` row. It fails closed: if the flags
cannot be read, the order is refused with reason "guard_unavailable". A policy MAC that verifies
under an older server key is re-signed under the current one (compare-and-swap), so a rotation
also converges without `keys reencrypt`.

Pass the bot row the order will be sized from: the gate authenticates those exact values.
Beyond the policy MAC it checks the bot's binding MAC (wallet, market index, sub-account,
the published bot it copies: storage.row_mac_rows) and, for a subscriber bot, the terms MAC of
that publication. `guard_withdrawal` is the same guard for a profit-share payment (any stop
refuses it; the IOU, its publication and its subscriber bot must all verify; an IOU is never
larger than percent x PnL and never paid twice); `check_retry_job` authenticates a retry row.
Call each immediately before signing.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from observability.trading_metrics import GUARD_REFUSALS
from security import row_macs
from security.emergency_stop import OrderIntent, OrderOrigin, StopMode
from security.gate import GateDecision, pre_trade_check
from security.policy import resign_policy_hmac, verify_policy_hmac
from security.server_key import ServerKeyRing
from storage.bots import Bot, replace_policy_hmac
from storage.copy_trading import publication_verdict, verified_publication
from storage.database import Database
from storage.emergency_stops import stop_states
from storage.guard_rows import GuardQuery, GuardRows, read_guard_rows
from storage.profit_shares import Share, payment_made
from storage.retry_queue import RetryJob, replace_job_mac
from storage.row_mac_rows import binding_reason, check_bot_binding, ensure_backfilled
from storage.trade_refusals import record_refusal
from storage.trade_rows import trade_row

log = logging.getLogger(__name__)

REASON_GUARD_UNAVAILABLE = "guard_unavailable"

POLICY_REFUSALS = Counter(
    "policy_refusals_total",
    "Orders refused before signing (emergency stop, policy HMAC, ...), by fixed reason label",
    ["reason"],
)


def guard_query(bot: Bot, intent: OrderIntent) -> GuardQuery:
    """Whose rows the guard of this order reads (storage.guard_rows): the publication's terms
    only before a subscriber opens (a close is not held back by them: they matter only to the
    payment, which checks them again), and none for a flatten (see security.gate)."""
    checked = intent.origin is not OrderOrigin.FLATTEN and not intent.reduce_only
    return GuardQuery(bot.id, bot.wallet_address,
                      bot.source_published_bot_id if checked else None)


def guard_trade(db: Database, ring: ServerKeyRing, bot: Bot, intent: OrderIntent,
                state_dir: str | None = None, rows: GuardRows | None = None) -> GateDecision:
    """May this bot's order leave now? Refusals are counted and recorded. The rows it checks
    are read in one statement (storage.guard_rows), or were just read with the order's trade
    row (`rows`, read for `guard_query(bot, intent)`)."""
    try:
        ensure_backfilled(db, ring, state_dir)
        if rows is None:
            rows = read_guard_rows(db, guard_query(bot, intent))
    except Exception as exc:
        log.error("trade guard cannot read the stop flags (%s): refusing",
                  type(exc).__name__, extra={"bot_id": bot.id})
        return _refuse(db, bot, intent, GateDecision(False, REASON_GUARD_UNAVAILABLE))
    policy_keys = ring.policy_keys()
    decision = pre_trade_check(
        global_stop=rows.global_stop,
        wallet_stop=rows.wallet_stop,
        intent=intent,
        policy_keys=policy_keys,
        policy=bot.policy,
        stored_policy_hmac=bot.policy_hmac,
        current_key_id=ring.current_key_id,
    )
    if not decision.allowed:
        return _refuse(db, bot, intent, decision)
    if decision.needs_policy_resign:
        _resign(db, ring, bot, policy_keys)
    if intent.origin is not OrderOrigin.FLATTEN:  # flatten: see security.gate
        try:
            reason = _rows_reason(db, ring, bot, rows)
        except Exception as exc:
            log.error("trade guard cannot check the bot's rows (%s): refusing",
                      type(exc).__name__, extra={"bot_id": bot.id})
            reason = REASON_GUARD_UNAVAILABLE
        if reason is not None:
            return _refuse(db, bot, intent, GateDecision(False, reason))
    return decision


def _rows_reason(db: Database, ring: ServerKeyRing, bot: Bot, rows: GuardRows) -> str | None:
    """The bot's binding MAC and the publication's terms, when they were read (guard_query)."""
    if not rows.bot_exists:
        return "bot_missing"
    reason = binding_reason(db, ring, bot, rows.binding_mac)
    if reason is None and rows.published_id is not None:
        _published, reason = publication_verdict(db, ring, rows.publication)
    return reason


def guard_withdrawal(db: Database, ring: ServerKeyRing, bot: Bot | None, share: Share,
                     state_dir: str | None = None) -> GateDecision:
    """May this profit-share payment be signed now? Refusals are counted and recorded.

    Any stop (plain or flatten, global or the subscriber's wallet) refuses it: reason
    "global_emergency_stop" / "wallet_emergency_stop" (the IOU waits). Any other reason means
    the rows do not authenticate or do not agree, and the IOU is never paid as it stands."""
    wallet = share.subscriber_wallet_address
    try:
        ensure_backfilled(db, ring, state_dir)
        global_stop, wallet_stop = stop_states(db, wallet)
    except Exception as exc:
        log.error("withdrawal guard cannot read the stop flags (%s): refusing",
                  type(exc).__name__)
        return _refuse_withdrawal(db, bot, wallet, REASON_GUARD_UNAVAILABLE)
    if global_stop.mode is not StopMode.NONE:
        return _refuse_withdrawal(db, bot, wallet, "global_emergency_stop")
    if wallet_stop.mode is not StopMode.NONE:
        return _refuse_withdrawal(db, bot, wallet, "wallet_emergency_stop")
    try:
        reason = _share_reason(db, ring, bot, share)
    except Exception as exc:
        log.error("withdrawal guard cannot check the rows (%s): refusing", type(exc).__name__)
        reason = REASON_GUARD_UNAVAILABLE
    if reason is not None:
        return _refuse_withdrawal(db, bot, wallet, reason)
    return GateDecision(True)


def _share_reason(db: Database, ring: ServerKeyRing, bot: Bot | None,
                  share: Share) -> str | None:
    """Why this IOU must not be paid (None: it may)."""
    if payment_made(db, share) is not None:
        return "profit_share_already_paid"
    verdict = row_macs.check(ring, row_macs.SHARE, row_macs.share_fields(share), share.share_mac)
    if not verdict.ok:
        return verdict.reason
    if not row_macs.within_share_cap(share.amount, share.realized_pnl,
                                     share.profit_share_percent):
        return "profit_share_above_cap"
    if bot is None:
        return "subscriber_bot_missing"
    if not verify_policy_hmac(ring.policy_keys(), bot.policy, bot.policy_hmac).ok:
        return "policy_hmac_mismatch"
    reason = check_bot_binding(db, ring, bot)
    if reason is not None:
        return reason
    if (bot.source_published_bot_id != share.published_bot_id
            or bot.wallet_address != share.subscriber_wallet_address):
        return "profit_share_not_this_subscription"
    published, reason = verified_publication(db, ring, share.published_bot_id)
    if published is None:
        return reason
    if (published.creator_wallet_address != share.creator_wallet_address
            or published.profit_share_percent != share.profit_share_percent):
        return "profit_share_terms_differ"
    trade = None if share.trade_id is None else trade_row(db, share.trade_id)
    if trade is None or trade.bot_id != bot.id or not trade.reduce_only or not trade.filled:
        return "profit_share_trade_mismatch"
    if verdict.needs_resign:
        from storage.profit_shares import replace_share_mac
        replace_share_mac(db, share, row_macs.sign(ring, row_macs.SHARE,
                                                   row_macs.share_fields(share)))
    return None


def check_retry_job(db: Database, ring: ServerKeyRing, bot: Bot, job: RetryJob,
                    intent: OrderIntent, state_dir: str | None = None) -> GateDecision:
    """Does this retry row authenticate (and belong to this bot as stored)? Refusals are
    counted and recorded with the retry's origin."""
    try:
        ensure_backfilled(db, ring, state_dir)
    except Exception as exc:
        log.error("retry check cannot run the MAC backfill (%s)", type(exc).__name__)
        return _refuse(db, bot, intent, GateDecision(False, REASON_GUARD_UNAVAILABLE))
    verdict = row_macs.check(ring, row_macs.RETRY, row_macs.retry_fields(job), job.job_mac)
    if not verdict.ok:
        return _refuse(db, bot, intent, GateDecision(False, verdict.reason))
    if (job.wallet_address != bot.wallet_address or job.market != bot.market
            or job.sub_account_id != bot.drift_subaccount_id):
        return _refuse(db, bot, intent, GateDecision(False, "retry_job_not_this_bot"))
    if verdict.needs_resign:
        replace_job_mac(db, job, row_macs.sign(ring, row_macs.RETRY, row_macs.retry_fields(job)))
    return GateDecision(True)


def _refuse_withdrawal(db: Database, bot: Bot | None, wallet: str, reason: str) -> GateDecision:
    """Count, record and log one refused payment; recording failures never make it a pass."""
    POLICY_REFUSALS.labels(reason=reason).inc()
    GUARD_REFUSALS.labels(what="withdrawal", reason=reason).inc()
    log.warning("profit-share payment refused before signing: %s", reason,
                extra={"bot_id": bot.id if bot else None})
    try:
        record_refusal(db, trading_bot_id=bot.id if bot else None, wallet_address=wallet,
                       reason=reason, origin="profit_share", kind="withdraw", reduce_only=False)
    except Exception as exc:
        log.error("could not record the refusal (%s)", type(exc).__name__)
    return GateDecision(False, reason)


def _refuse(db: Database, bot: Bot, intent: OrderIntent, decision: GateDecision) -> GateDecision:
    """Count, record and log one refusal; recording failures never turn it into a pass."""
    reason = decision.reason or "refused"
    POLICY_REFUSALS.labels(reason=reason).inc()
    GUARD_REFUSALS.labels(what="order", reason=reason).inc()
    log.warning("trade refused before signing: %s (%s %s)", reason, intent.origin.value,
                intent.kind.value, extra={"bot_id": bot.id})
    try:
        record_refusal(db, trading_bot_id=bot.id, wallet_address=bot.wallet_address,
                       reason=reason, origin=intent.origin.value, kind=intent.kind.value,
                       reduce_only=intent.reduce_only)
    except Exception as exc:
        log.error("could not record the refusal (%s)", type(exc).__name__,
                  extra={"bot_id": bot.id})
    return decision


def _resign(db: Database, ring: ServerKeyRing, bot: Bot, policy_keys: dict[str, bytes]) -> None:
    """Move a verified policy MAC to the current server key (best effort)."""
    try:
        new = resign_policy_hmac(policy_keys, ring.current_key_id, bot.policy, bot.policy_hmac)
        if new != bot.policy_hmac:
            replace_policy_hmac(db, bot, new)
    except Exception as exc:  # PolicyRefused cannot happen after a pass; never fail open
        log.warning("policy re-sign skipped (%s)", type(exc).__name__, extra={"bot_id": bot.id})
