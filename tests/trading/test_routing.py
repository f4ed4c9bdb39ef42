"""Routing flags: Swift first only when every switch allows it, with a reason otherwise."""

import pytest

from trading.routing import LIVE_FLAGS, SwiftFlags, choose_route, rollout_bucket

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
    (SwiftFlags(), {"signed_msg_orders": False}, "no_signed_msg_user_orders"),
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


def test_flags_from_setting_values_name_every_live_flag() -> None:
    values = {"SWIFT_ENABLED": False, "SWIFT_FALLBACK_ENABLED": False,
              "SWIFT_RETRY_WITH_SWIFT": False, "SWIFT_ROLLOUT_PERCENT": 10,
              "SWIFT_CRITICAL_ORDERS_LEGACY": True, "SWIFT_SUPPORTED_MARKETS": ["SOL-PERP"],
              "SWIFT_RATE_PER_S": 5}  # not a live flag: ignored
    assert set(values) - {"SWIFT_RATE_PER_S"} == set(LIVE_FLAGS)
    assert SwiftFlags.from_values(values) == SwiftFlags(
        enabled=False, rollout_percent=10, critical_orders_legacy=True,
        allowed_markets=("SOL-PERP",), fallback_enabled=False, retry_with_swift=False)
    assert SwiftFlags.from_values({}) == SwiftFlags()


def test_an_authority_without_signed_msg_user_orders_goes_on_chain_even_when_forced() -> None:
    assert route(use_swift_override=True, signed_msg_orders=False) == (
        "legacy", "no_signed_msg_user_orders")
