"""The caller-facing pre-trade gate: every execution path calls `guard_trade` before signing.

It loads the global and the wallet's emergency stop flags from the database, runs the pure
`security.gate.pre_trade_check` (stop first, then the policy HMAC), and for a refusal counts
`policy_refusals_total{reason}` and stores a `trade_refusals` row. It fails closed: if the flags
cannot be read, the order is refused with reason "guard_unavailable". A policy MAC that verifies
under an older server key is re-signed under the current one (compare-and-swap), so a rotation
also converges without `keys reencrypt`.

Pass the bot row the order will be sized from: the gate authenticates those exact values.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from security.emergency_stop import OrderIntent
from security.gate import GateDecision, pre_trade_check
from security.policy import resign_policy_hmac
from security.server_key import ServerKeyRing
from storage.bots import Bot, replace_policy_hmac
from storage.database import Database
from storage.emergency_stops import stop_states
from storage.trade_refusals import record_refusal

log = logging.getLogger(__name__)

REASON_GUARD_UNAVAILABLE = "guard_unavailable"

POLICY_REFUSALS = Counter(
    "policy_refusals_total",
    "Orders refused before signing (emergency stop, policy HMAC, ...), by fixed reason label",
    ["reason"],
)


def guard_trade(db: Database, ring: ServerKeyRing, bot: Bot, intent: OrderIntent) -> GateDecision:
    """May this bot's order leave now? Refusals are counted and recorded."""
    try:
        global_stop, wallet_stop = stop_states(db, bot.wallet_address)
    except Exception as exc:
        log.error("trade guard cannot read the stop flags (%s): refusing",
                  type(exc).__name__, extra={"bot_id": bot.id})
        return _refuse(db, bot, intent, GateDecision(False, REASON_GUARD_UNAVAILABLE))
    policy_keys = ring.policy_keys()
    decision = pre_trade_check(
        global_stop=global_stop,
        wallet_stop=wallet_stop,
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
    return decision


def _refuse(db: Database, bot: Bot, intent: OrderIntent, decision: GateDecision) -> GateDecision:
    """Count, record and log one refusal; recording failures never turn it into a pass."""
    reason = decision.reason or "refused"
    POLICY_REFUSALS.labels(reason=reason).inc()
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
