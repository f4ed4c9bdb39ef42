"""Swift first or legacy? The routing rules and flags as one pure decision.

Swift is tried when it is enabled globally and for the bot, the gateway reports it healthy, the
bot falls inside the percentage rollout, the market is allowed, the order is not dust (Swift
refuses sizes below the market minimum), critical orders are not pinned to legacy, and the
authority has its SignedMsgUserOrders account (without it Swift accepts orders that are never
placed). A manual trade's `useSwift` overrides the bot's own preference but not health or dust.

The flags are live (`quantumvault flags set NAME VALUE`): `LIVE_FLAGS` names them by their
setting, and `SwiftFlags.from_values` builds them from settings or stored values alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# setting name -> SwiftFlags field; these can change while the daemon runs
LIVE_FLAGS: Mapping[str, str] = {
    "SWIFT_ENABLED": "enabled",
    "SWIFT_FALLBACK_ENABLED": "fallback_enabled",
    "SWIFT_RETRY_WITH_SWIFT": "retry_with_swift",
    "SWIFT_ROLLOUT_PERCENT": "rollout_percent",
    "SWIFT_CRITICAL_ORDERS_LEGACY": "critical_orders_legacy",
    "SWIFT_SUPPORTED_MARKETS": "allowed_markets",
}


@dataclass(frozen=True)
class SwiftFlags:
    """Process-wide Swift switches (live: see `LIVE_FLAGS`)."""

    enabled: bool = True
    rollout_percent: int = 100
    critical_orders_legacy: bool = False
    allowed_markets: tuple[str, ...] = ()  # empty: every market
    fallback_enabled: bool = True  # a failed Swift order may go on-chain (and the bot allows it)
    retry_with_swift: bool = True  # retryable Swift refusals are retried on Swift first

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> SwiftFlags:
        """Flags from parsed values keyed by setting name (settings, or stored overrides)."""
        given: dict[str, Any] = {field: (tuple(values[name]) if field == "allowed_markets"
                                         else values[name])
                                 for name, field in LIVE_FLAGS.items() if name in values}
        return cls(**given)


@dataclass(frozen=True)
class RouteDecision:
    """The method for one order, and why it is not Swift when it is not."""

    method: str  # "swift" | "legacy"
    reason: str | None = None


def rollout_bucket(bot_id: str) -> int:
    """A stable 0..99 bucket per bot, so a rollout percentage picks the same bots every time."""
    return int.from_bytes(hashlib.sha256(bot_id.encode()).digest()[:4], "big") % 100


def choose_route(flags: SwiftFlags, *, bot_id: str, bot_swift_enabled: bool, market: str,
                 swift_healthy: bool, dust: bool, critical: bool,
                 use_swift_override: bool | None = None,
                 signed_msg_orders: bool = True) -> RouteDecision:
    """Decide swift or legacy for one order; the reason is a bounded metric label."""
    if not flags.enabled:
        return RouteDecision("legacy", "swift_disabled")
    if use_swift_override is False:
        return RouteDecision("legacy", "swift_not_requested")
    if use_swift_override is None and not bot_swift_enabled:
        return RouteDecision("legacy", "bot_swift_disabled")
    if use_swift_override is None and rollout_bucket(bot_id) >= flags.rollout_percent:
        return RouteDecision("legacy", "rollout")
    if flags.allowed_markets and market not in flags.allowed_markets:
        return RouteDecision("legacy", "market_not_allowed")
    if dust:
        return RouteDecision("legacy", "dust")
    if critical and flags.critical_orders_legacy:
        return RouteDecision("legacy", "critical_orders_legacy")
    if not signed_msg_orders:
        return RouteDecision("legacy", "no_signed_msg_user_orders")
    if not swift_healthy:
        return RouteDecision("legacy", "swift_unhealthy")
    return RouteDecision("swift")
