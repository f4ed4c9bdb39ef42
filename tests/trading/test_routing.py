"""Routing flags: Swift first only when every switch allows it, with a reason otherwise."""

import pytest

from trading.routing import SwiftFlags, choose_route, rollout_bucket

DEFAULT = SwiftFlags()
BASE = {"bot_id": "bot-1", "bot_swift_enabled": True, "market": "SOL-PERP",
        "swift_healthy": True, "dust": False, "critical": False}


def route(flags: SwiftFlags = DEFAULT, **overrides: object) -> tuple[str, str | None]:
    decision = choose_route(flags, **{**BASE, **overrides})
    return decision.method, decision.reason


def test_swift_when_everything_allows_it() -> None:
    assert route() == ("swift", None)


@pytest.mark.parametrize(("flags", "overrides", "reason"), [
    (SwiftFlags(enabled=False), {}, "swift_disabled"),
    (SwiftFlags(), {"bot_swift_enabled": False}, "bot_swift_disabled"),
    (SwiftFlags(allowed_markets=("BTC-PERP",)), {}, "market_not_allowed"),
    (SwiftFlags(), {"dust": True}, "dust"),
    (SwiftFlags(critical_orders_legacy=True), {"critical": True}, "critical_orders_legacy"),
    (SwiftFlags(), {"swift_healthy": False}, "swift_unhealthy"),
    (SwiftFlags(rollout_percent=0), {}, "rollout"),
])
def test_each_switch_sends_the_order_on_chain(flags: SwiftFlags, overrides: dict,
                                              reason: str) -> None:
    assert route(flags, **overrides) == ("legacy", reason)


def test_critical_orders_use_swift_unless_pinned_to_legacy() -> None:
    assert route(critical=True) == ("swift", None)


def test_manual_override_beats_the_bot_preference_but_not_health_or_dust() -> None:
    assert route(bot_swift_enabled=False, use_swift_override=True) == ("swift", None)
    assert route(use_swift_override=False) == ("legacy", "swift_not_requested")
    assert route(use_swift_override=True, swift_healthy=False)[1] == "swift_unhealthy"
    assert route(use_swift_override=True, dust=True)[1] == "dust"
    assert route(SwiftFlags(enabled=False), use_swift_override=True)[1] == "swift_disabled"


def test_rollout_picks_a_stable_share_of_bots() -> None:
    bots = [f"bot-{i}" for i in range(2000)]
    in_rollout = [b for b in bots if route(SwiftFlags(rollout_percent=25), bot_id=b)[0] ==
                  "swift"]
    assert 400 < len(in_rollout) < 600  # about a quarter
    assert all(rollout_bucket(b) < 25 for b in in_rollout)
    again = [b for b in bots if route(SwiftFlags(rollout_percent=25), bot_id=b)[0] == "swift"]
    assert again == in_rollout  # the same bots every time
