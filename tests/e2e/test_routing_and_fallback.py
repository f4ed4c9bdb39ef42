"""Swift first, legacy when Swift cannot: health, liquidity, flags, manual overrides, e-stop."""

from __future__ import annotations

import pytest
import requests

from supervision import Status
from tests.e2e.stack import ADMIN, Stack

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
OPEN_SHORT = "order sell @ 1 filled on SOLUSD. New strategy position is -1"


def manual(stack: Stack, bot: dict, body: dict) -> requests.Response:
    return requests.post(f"{stack.url}/api/trading-bots/{bot['bot_id']}/manual-trade",
                         json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def test_manual_trade_goes_through_the_same_path_and_honours_use_swift(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    assert manual(stack, bot, {"action": "buy"}).status_code == 202
    refused = requests.post(f"{stack.url}/api/trading-bots/{bot['bot_id']}/manual-trade",
                            json={"action": "buy"}, timeout=10)
    assert refused.status_code == 401
    forced = manual(stack, bot, {"action": "close", "useSwift": False}).json()["signal_id"]
    assert stack.wait(forced) == {forced: "done"}
    (trade,) = stack.trades(forced)
    assert (trade["execution_method"], trade["fallback_reason"], trade["status"]) == (
        "legacy", "swift_not_requested", "completed")
    assert trade["tx_signature"] and trade["reduce_only"]
    assert stack.position(bot["agent"]) == 0
    assert manual(stack, bot, {"action": "hold"}).status_code == 400


def test_no_liquidity_lets_the_auction_expire_then_falls_back_on_chain(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_makers_paused=True)  # no auction makers; the AMM still fills on-chain
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    (trade,) = stack.trades(signal_id)
    assert trade["execution_method"] == "legacy" and trade["status"] == "completed"
    assert trade["swift_status"] == "fallback"  # one of its four values; the expiry is in the log
    assert trade["fallback_reason"] == "swift_expired:not_filled"
    events = [r["event_type"] for r in stack.db.fetchall(
        "SELECT event_type FROM swift_order_logs WHERE trade_id = %s ORDER BY created_at",
        (trade["id"],))]
    assert events == ["submitted", "accepted", "placed", "expired"]
    assert stack.position(bot["agent"]) == int(trade["filled_size"] * 10**9) > 0


def test_partial_fill_records_the_part_and_queues_the_remainder(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.liquidity("partial", fraction=0.5)
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "partial"}
    (trade,) = stack.trades(signal_id)
    assert trade["status"] == "partial" and trade["execution_method"] == "swift"
    assert 0 < trade["filled_size"] < trade["size"]
    (job,) = stack.db.fetchall("SELECT * FROM trade_retry_queue WHERE original_trade_id = %s",
                               (trade["id"],))
    assert job["is_remainder"] and job["size"] == trade["size"] - trade["filled_size"]
    assert job["priority"] == "normal" and job["status"] == "pending"


def test_swift_errors_fall_back_and_three_failures_mark_it_unhealthy(stack: Stack) -> None:
    stack.faults(swift_status=503)
    bots = [stack.new_bot(max_usd="200") for _ in range(4)]
    reasons, signal_ids = [], []
    for bot in bots:
        signal_id = stack.alert(bot, OPEN_SHORT).json()["signal_id"]
        signal_ids.append(signal_id)
        assert stack.wait(signal_id) == {signal_id: "done"}
        (trade,) = stack.trades(signal_id)
        assert trade["execution_method"] == "legacy" and trade["status"] == "completed"
        reasons.append(trade["fallback_reason"])
    # the first order's Swift retries (SWIFT_MAX_RETRIES_BEFORE_FALLBACK=2) are the three
    # consecutive failures: the orders after it never try Swift
    assert reasons == ["swift_rejected:unavailable"] + ["swift_unhealthy"] * 3
    (first,) = stack.trades(signal_ids[0])
    assert stack.db.fetchone("SELECT count(*) AS n FROM swift_order_logs WHERE trade_id = %s"
                             " AND event_type = 'submitted'", (first["id"],))["n"] == 3
    assert stack.orders_reaching_sandbox(bots[3]["agent"]) == 1  # its one on-chain order


@pytest.mark.parametrize("stack", [{"SWIFT_ENABLED": "false"}], indirect=True)
def test_swift_disabled_globally_sends_everything_on_chain(stack: Stack) -> None:
    bot = stack.new_bot()
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["fallback_reason"]) == ("legacy", "swift_disabled")
    assert stack.sandbox_stats(bot["agent"]).get("swift_orders_received", 0) == 0


def test_emergency_stop_lets_no_order_reach_the_venue(stack: Stack) -> None:
    bot = stack.new_bot()
    stack.cli("estop", "set", "--wallet", bot["wallet"], "--reason", "drill")
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "failed"}
    (trade,) = stack.trades(signal_id)
    assert trade["status"] == "failed" and trade["error_message"].startswith("refused:")
    assert stack.orders_reaching_sandbox(bot["agent"]) == 0
    stack.cli("estop", "clear", "--wallet", bot["wallet"])
    again = stack.alert(bot, '{"action": "buy", "contracts": 1, "position_size": 1, '
                             '"timenow": "after-clear"}', "application/json").json()
    assert stack.wait(again["signal_id"]) == {again["signal_id"]: "done"}


def test_an_rpc_outage_holds_the_signal_in_order_and_trading_resumes_after_it(
        stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.faults(rpc_primary_down=True, rpc_backup_down=True)
    during = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    after = stack.alert(bot, '{"action": "sell", "contracts": 1, "position_size": 0,'
                             ' "timenow": "after"}', "application/json").json()["signal_id"]
    stats = stack.sandbox.exchange.stats
    assert stats.wait_for(lambda: stats.totals.get("rpc_primary_fault", 0) >= 3, timeout=30)
    assert stack.orders_reaching_sandbox(bot["agent"]) == 0
    stack.faults()  # the venue is back: the held signal runs, then the one behind it
    assert stack.wait(during, after) == {during: "done", after: "done"}
    sides = [t["side"] for s in (during, after) for t in stack.trades(s)]
    assert sides == ["long", "short"]
    bots = stack.root.ask(Status(), timeout=10)["children"]["bots"]["children"]
    assert bots[f"bot-{bot['bot_id']}"]["restarts"] == 0  # nothing crashed
