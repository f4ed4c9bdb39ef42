"""Path 1, the webhook: alert -> durable signal -> Swift order -> fill, with every refusal."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.e2e.stack import Stack

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
CLOSE = "order sell @ 1 filled on SOLUSD. New strategy position is 0"


def unauthenticated(reason: str) -> float:
    """webhook_unauthenticated_total{reason} of this process (the stack runs in it)."""
    return REGISTRY.get_sample_value("webhook_unauthenticated_total", {"reason": reason}) or 0.0


def test_an_alert_becomes_a_filled_swift_order(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    answer = stack.alert(bot, OPEN_LONG)
    assert answer.status_code == 202 and answer.elapsed.total_seconds() < 3
    signal_id = answer.json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["swift_status"], trade["status"]) == (
        "swift", "filled", "completed")
    assert trade["side"] == "long" and not trade["reduce_only"]
    filled = stack.position(bot["agent"])
    assert filled == int(trade["filled_size"] * 10**9) == int(trade["size"] * 10**9)
    assert 1.9 * 10**9 <= filled <= 2.1 * 10**9  # 300 USD at an oracle near 150
    events = [r["event_type"] for r in stack.db.fetchall(
        "SELECT event_type FROM swift_order_logs WHERE trade_id = %s ORDER BY created_at",
        (trade["id"],))]
    assert events == ["submitted", "accepted", "placed", "filled"]
    story = stack.story(signal_id)
    assert story["status"] == "done" and story["trades"][0]["swift_order_id"]


def test_close_sends_reduce_only_for_the_position_held(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    opened = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    stack.wait(opened)
    (entry,) = stack.trades(opened)
    held = stack.position(bot["agent"])
    stack.move_oracle(1.04)
    closed = stack.alert(bot, CLOSE).json()["signal_id"]
    assert stack.wait(closed) == {closed: "done"}
    (trade,) = stack.trades(closed)
    assert trade["reduce_only"] and trade["side"] == "short"
    assert int(trade["size"] * 10**9) == held
    assert stack.position(bot["agent"]) == 0
    assert trade["price"] > entry["price"] * 103 / 100  # the exit price, not the entry


def test_the_same_alert_twice_executes_once(stack: Stack) -> None:
    bot = stack.new_bot()
    body = '{"action": "buy", "contracts": 1, "position_size": 1, "timenow": "t1"}'
    first = stack.alert(bot, body, "application/json")
    second = stack.alert(bot, body, "application/json")
    assert first.status_code == 202 and second.status_code == 200
    assert second.json() == {"signal_id": first.json()["signal_id"], "status": "duplicate",
                             "duplicate": True}
    stack.wait(first.json()["signal_id"])
    assert stack.orders_reaching_sandbox(bot["agent"]) == 1


def test_refusals_execute_nothing_and_only_authenticated_ones_are_recorded(
        stack: Stack) -> None:
    bot = stack.new_bot()
    before = {reason: unauthenticated(reason) for reason in (
        "unknown_bot", "webhook_secret_mismatch", "webhook_secret_missing")}
    unknown = stack.alert({**bot, "bot_id": "no-such-bot"}, OPEN_LONG)
    wrong = stack.alert(bot, OPEN_LONG, secret="not-the-secret")
    missing = stack.alert(bot, OPEN_LONG, secret="")
    malformed = stack.alert(bot, "buy some SOL please")
    assert (unknown.status_code, wrong.status_code, missing.status_code,
            malformed.status_code) == (404, 401, 401, 400)
    assert "strategy message" in malformed.json()["error"]
    rows = stack.db.fetchall("SELECT status, error FROM webhook_signals WHERE trading_bot_id"
                             " = %s ORDER BY seq", (bot["bot_id"],))
    assert [r["status"] for r in rows] == ["rejected"]  # the wrong secrets wrote nothing
    assert "malformed" in rows[0]["error"]
    assert {reason: unauthenticated(reason) - n for reason, n in before.items()} == {
        "unknown_bot": 1, "webhook_secret_mismatch": 1, "webhook_secret_missing": 1}
    assert stack.orders_reaching_sandbox(bot["agent"]) == 0
    assert stack.db.fetchone("SELECT count(*) AS n FROM bot_trades")["n"] == 0
