"""Path 3 and the per-bot order: one alert reaches every subscriber once; bots never mix."""

from __future__ import annotations

import gevent
import pytest

from tests.e2e.stack import Stack, copies

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
FLIP_SHORT = "order sell @ 2 filled on SOLUSD. New strategy position is -1"



def test_one_alert_reaches_every_subscriber_exactly_once(stack: Stack) -> None:
    source, followers = stack.published_with_subscribers(3)
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    made = copies(stack, signal_id)
    assert set(made) == {f["bot_id"] for f in followers}
    assert set(stack.wait(*made.values()).values()) == {"done"}
    for follower in followers:
        (trade,) = stack.trades(made[follower["bot_id"]])
        assert trade["status"] == "completed" and trade["trading_bot_id"] == follower["bot_id"]
        assert stack.orders_reaching_sandbox(follower["agent"]) == 1
        assert stack.position(follower["agent"]) > 0
    story = stack.story(signal_id)
    assert len(story["trades"]) == 1 and len(story["subscribers"]) == 3
    assert all(copy["trades"][0]["status"] == "completed" for copy in story["subscribers"])


@pytest.mark.parametrize("stack", [{"SWIFT_MAX_IN_FLIGHT": "1"}], indirect=True)
def test_swift_failing_mid_fanout_sends_the_rest_straight_on_chain(stack: Stack) -> None:
    source, followers = stack.published_with_subscribers(5)
    stack.cli("estop", "set", "--wallet", source["wallet"])  # source refused, still routed
    stack.faults(swift_status=503)
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    made = copies(stack, signal_id)
    assert set(stack.wait(*made.values()).values()) == {"done"}
    reasons = []
    for follower in followers:  # one POST on the wire at a time: health turns mid-fan-out
        (trade,) = stack.trades(made[follower["bot_id"]])
        assert trade["execution_method"] == "legacy" and trade["status"] == "completed"
        reasons.append(trade["fallback_reason"])
    # the rest are not sent to Swift, whether routing or the gateway's line found it unhealthy
    assert reasons.count("swift_rejected:unavailable") == 3
    assert sum(r.endswith("swift_unhealthy") for r in reasons) == 2


def test_a_paused_source_bot_still_routes_to_its_subscribers(stack: Stack) -> None:
    source, followers = stack.published_with_subscribers(2)
    stack.db.execute("UPDATE trading_bots SET is_active = false, paused_reason = 'test'"
                     " WHERE id = %s", (source["bot_id"],))
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "skipped"}
    assert stack.trades(signal_id) == []
    made = copies(stack, signal_id)
    assert set(made) == {f["bot_id"] for f in followers}
    assert set(stack.wait(*made.values()).values()) == {"done"}
    assert stack.orders_reaching_sandbox(source["agent"]) == 0


def test_flip_closes_then_opens_the_other_side(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.wait(stack.alert(bot, OPEN_LONG).json()["signal_id"])
    long_held = stack.position(bot["agent"])
    flip = stack.alert(bot, FLIP_SHORT).json()["signal_id"]
    assert stack.wait(flip) == {flip: "done"}
    close, open_ = stack.trades(flip)
    assert close["reduce_only"] and close["side"] == "short"
    assert int(close["size"] * 10**9) == long_held
    assert not open_["reduce_only"] and open_["side"] == "short"
    assert stack.position(bot["agent"]) == -int(open_["filled_size"] * 10**9) < 0


def test_each_bot_runs_its_signals_in_arrival_order_without_waiting_for_others(
        stack: Stack) -> None:
    bots = [stack.new_bot(max_usd="300") for _ in range(4)]
    bodies = [f'{{"action": "{a}", "contracts": 1, "position_size": {p}, "timenow": "{i}"}}'
              for i, (a, p) in enumerate([("buy", 1), ("sell", 0), ("buy", 1), ("sell", 0)])]

    def fire(bot: dict) -> list[str]:
        return [stack.alert(bot, body, "application/json").json()["signal_id"]
                for body in bodies]

    fired = [g.get(timeout=60) for g in [gevent.spawn(fire, bot) for bot in bots]]
    for bot, signal_ids in zip(bots, fired, strict=True):
        stack.wait(*signal_ids)
        rows = stack.db.fetchall(
            "SELECT id FROM webhook_signals WHERE trading_bot_id = %s AND status <> 'rejected'"
            " ORDER BY processed_at", (bot["bot_id"],))
        assert [r["id"] for r in rows] == signal_ids  # processed in the order they arrived
        sides = [t["side"] for s in signal_ids for t in stack.trades(s)]
        assert sides == ["long", "short", "long", "short"]
        assert stack.position(bot["agent"]) == 0


@pytest.mark.parametrize(("active", "expires", "trigger"), [
    (False, None, "auth_disabled"),
    (True, "now() - interval '1 minute'", "auth_expired"),
])
def test_disabled_or_expired_authorization_skips_the_source_and_still_routes(
        stack: Stack, active: bool, expires: str | None, trigger: str) -> None:
    source, followers = stack.published_with_subscribers(1)
    stack.db.execute(  # a UMK-path bot: its execution needs the user's authorization
        f"UPDATE trading_bots SET umk_encrypted_for_bot = 'sealed-umk', execution_active = %s,"
        f" execution_expires_at = {expires or 'NULL'} WHERE id = %s",
        (active, source["bot_id"]))
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "skipped"}
    assert stack.story(signal_id)["status_reason"] == trigger
    assert stack.orders_reaching_sandbox(source["agent"]) == 0
    (copy,) = copies(stack, signal_id).values()
    assert stack.wait(copy) == {copy: "done"}
    assert stack.position(followers[0]["agent"]) > 0
