"""One pre-trade check for every execution path (webhook, manual, subscriber, retry, flatten).

Order of checks: emergency stop first (the operator's switch wins over everything), then the
policy HMAC. The execution authorization (auth_disabled / auth_expired) is *not* part of this
gate: it is a property of the UMK path of a source bot and runs earlier, before any decryption,
at the routing trigger points (`security.execution.check_execution`); subscriber bots use the
legacy server-key path and have no execution authorization.

Flatten orders skip the policy check: they are sized from the position read from the venue, not
from the bot row, and they are reduce-only closes, so a tampered policy cannot enlarge them;
refusing them would keep risk open exactly during an incident. Every other order, including a
plain close, must pass the policy check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from security.emergency_stop import OrderIntent, OrderOrigin, StopState, decide
from security.policy import BotPolicy, verify_policy_hmac


@dataclass(frozen=True)
class GateDecision:
    """Allowed, or refused with a reason that is both the DB text and the metric label."""

    allowed: bool
    reason: str | None = None
    needs_policy_resign: bool = False


def pre_trade_check(
    *,
    global_stop: StopState,
    wallet_stop: StopState,
    intent: OrderIntent,
    policy_keys: Mapping[str, bytes],
    policy: BotPolicy,
    stored_policy_hmac: str | None,
    current_key_id: str | None = None,
    allow_missing_policy_hmac: bool = False,
) -> GateDecision:
    """May this order leave? Pure; call it on every path right before signing."""
    stop = decide(global_stop, wallet_stop, intent)
    if not stop.allowed:
        return GateDecision(False, stop.reason)
    if intent.origin is OrderOrigin.FLATTEN:
        return GateDecision(True)
    check = verify_policy_hmac(
        policy_keys,
        policy,
        stored_policy_hmac,
        current_key_id=current_key_id,
        allow_missing=allow_missing_policy_hmac,
    )
    if not check.ok:
        return GateDecision(False, check.reason)
    return GateDecision(True, needs_policy_resign=check.needs_resign)
