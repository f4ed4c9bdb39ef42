"""Stop and flatten: the operator's command closes every open position reduce-only, through
the running daemon, and nothing else trades while the stop holds."""

from __future__ import annotations

from tests.e2e.stack import Stack

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
OPEN_AGAIN = '{"action": "buy", "contracts": 1, "position_size": 2, "timenow": "later"}'


def flatten_signals(stack: Stack, bot_id: str) -> list[str]:
    rows = stack.db.fetchall("SELECT id FROM webhook_signals WHERE trading_bot_id = %s AND"
                             " source = 'flatten'", (bot_id,))
    return [r["id"] for r in rows]


def test_wallet_stop_and_flatten_closes_the_position_and_blocks_new_orders(
        stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.wait(stack.alert(bot, OPEN_LONG).json()["signal_id"])
    held = stack.position(bot["agent"])
    assert held > 0
    stack.cli("estop", "set", "--wallet", bot["wallet"], "--flatten", "--reason", "drill")
    (flatten,) = flatten_signals(stack, bot["bot_id"])
    assert stack.wait(flatten) == {flatten: "done"}
    (close,) = stack.trades(flatten)
    assert close["reduce_only"] and close["side"] == "short"
    assert int(close["filled_size"] * 10**9) == held
    assert stack.position(bot["agent"]) == 0
    sent = stack.orders_reaching_sandbox(bot["agent"])
    refused = stack.alert(bot, OPEN_AGAIN, "application/json").json()["signal_id"]
    assert stack.wait(refused) == {refused: "failed"}
    assert stack.orders_reaching_sandbox(bot["agent"]) == sent  # the stop holds


def test_global_flatten_reaches_every_bot_and_a_flat_bot_sends_nothing(stack: Stack) -> None:
    busy, idle = stack.new_bot(max_usd="300"), stack.new_bot(max_usd="300")
    stack.wait(stack.alert(busy, OPEN_LONG).json()["signal_id"])
    stack.cli("estop", "set", "--global", "--flatten")
    signals = flatten_signals(stack, busy["bot_id"]) + flatten_signals(stack, idle["bot_id"])
    assert set(stack.wait(*signals).values()) == {"done"}
    assert stack.position(busy["agent"]) == 0
    assert stack.orders_reaching_sandbox(idle["agent"]) == 0
    stack.cli("estop", "clear", "--global")
