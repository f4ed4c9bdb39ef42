"""Each bot on its own Drift sub-account, through the real CLI, tree and sandbox.

Two bots of one wallet on one market: their orders land on different sub-accounts and a close of
one leaves the other's position alone. A subscription on a wallet that trades itself: the copy
trades, and pays its profit share, from its own sub-account. Bots created before per-bot
sub-accounts: `bot migrate-subaccounts` refuses while the shared account holds a position in the
bot's market, then moves the bot (venue first, then the row) with a report.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import requests

import runtime
from storage.profit_shares import ShareWaiter, share_for_trade
from tests.e2e.stack import WAIT_S, Stack, environment

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
CLOSE_LONG = "order sell @ 1 filled on SOLUSD. New strategy position is 0"
USDC = 1_000_000


def user(stack: Stack, agent: str, sub_account_id: int) -> dict[str, Any] | None:
    """The sandbox's summary of one sub-account (None when it does not exist)."""
    answer = requests.get(f"{stack.sandbox.url}/sandbox/user", timeout=5, params={
        "authority": agent, "sub_account_id": sub_account_id})
    return answer.json() if answer.status_code == 200 else None


def position(stack: Stack, agent: str, sub_account_id: int, market_index: int = 0) -> int:
    """Base position of one sub-account in a market (1e9)."""
    found = user(stack, agent, sub_account_id) or {}
    return next((int(p["base_asset_amount"]) for p in found.get("positions", [])
                 if p["market_index"] == market_index), 0)


def fills(stack: Stack, agent: str) -> list[dict[str, Any]]:
    """The sandbox's fills of one authority, oldest first."""
    return requests.get(f"{stack.sandbox.url}/sandbox/fills", params={"authority": agent},
                        timeout=5).json()["fills"]


def fire(stack: Stack, bot: dict[str, Any], body: str) -> str:
    """An alert to the bot, waited until final; its signal id."""
    signal_id = stack.alert(bot, body).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    return signal_id


def cli_code(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    """A CLI command's exit status and JSON object (Stack.cli insists on exit 0)."""
    out = io.StringIO()
    with environment(stack.env), contextlib.redirect_stdout(out):
        code = runtime.main([*args, "--json"])
    return code, json.loads(out.getvalue().splitlines()[-1])


def second_bot(stack: Stack, first: dict[str, Any], *extra: str) -> dict[str, Any]:
    """Another SOL-PERP bot on the first bot's wallet."""
    made = stack.cli("bot", "create", "--wallet", first["wallet"], "--market", "SOL-PERP",
                     "--leverage", "5", "--max-position-usd", "500", *extra)
    return {**first, "bot_id": made["bot_id"], "secret": made["webhook_secret"], "made": made}


def test_two_bots_of_one_wallet_and_market_never_touch_each_others_position(
        stack: Stack) -> None:
    first = stack.new_bot()  # wallet funded with 1000 on sub-account 0, its first bot there
    second = second_bot(stack, first, "--fund-usd", "300")
    made = second["made"]["sub_account"]
    assert (made["id"], made["venue"], made["funding"], made["funded_usd"]) == (
        1, "created", "transfer_deposit", "300")
    shown = stack.cli("bot", "show", second["bot_id"])
    assert shown["drift_subaccount_id"] == 1 and shown["sub_account"]["shared"] is False
    assert stack.cli("bot", "show", first["bot_id"])["sub_account"]["id"] == 0
    agent = first["agent"]
    assert user(stack, agent, 1)["quote_balance"] == 300 * USDC
    assert user(stack, agent, 0)["quote_balance"] == 700 * USDC

    fire(stack, first, OPEN_LONG)
    fire(stack, second, OPEN_LONG)
    opened = fills(stack, agent)
    assert {f["sub_account_id"] for f in opened} == {0, 1}
    held = {sub: position(stack, agent, sub) for sub in (0, 1)}
    assert held[0] > 0 and held[1] > 0

    fire(stack, first, CLOSE_LONG)
    closing = fills(stack, agent)[len(opened):]
    assert closing and {f["sub_account_id"] for f in closing} == {0}
    assert position(stack, agent, 0) == 0
    assert position(stack, agent, 1) == held[1]  # the second bot's position is intact


def test_a_subscription_on_a_trading_wallet_trades_and_pays_from_its_own_sub_account(
        stack: Stack) -> None:
    source = stack.new_bot(max_usd="300")
    stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    own = stack.new_bot()  # the follower's wallet has a bot of its own on sub-account 0
    sub = stack.cli("bot", "subscribe", "--wallet", own["wallet"], "--to", source["bot_id"],
                    "--capital-usd", "200")
    assert sub["sub_account"]["id"] == 1 and sub["sub_account"]["funded_usd"] == "200"
    requests.post(f"{stack.sandbox.url}/sandbox/oracle", timeout=5,
                  json={"market_index": 0, "price": 150, "freeze": True})
    fire(stack, own, OPEN_LONG)
    mine = position(stack, own["agent"], 0)
    opened = fire(stack, source, OPEN_LONG)
    (copy,) = stack.db.fetchall("SELECT id FROM webhook_signals WHERE parent_signal_id = %s",
                                (opened,))
    assert stack.wait(copy["id"]) == {copy["id"]: "done"}
    assert position(stack, own["agent"], 1) > 0 and position(stack, own["agent"], 0) == mine

    requests.post(f"{stack.sandbox.url}/sandbox/oracle", timeout=5,
                  json={"market_index": 0, "price": 165, "freeze": True})
    closed = fire(stack, source, CLOSE_LONG)
    (copy,) = stack.db.fetchall("SELECT id FROM webhook_signals WHERE parent_signal_id = %s",
                                (closed,))
    assert stack.wait(copy["id"]) == {copy["id"]: "done"}
    assert position(stack, own["agent"], 1) == 0 and position(stack, own["agent"], 0) == mine
    (trade,) = stack.trades(copy["id"])
    share = share_for_trade(stack.db, trade["id"])
    assert share is not None
    waiter = ShareWaiter(stack.env["DATABASE_URL"])
    try:
        paid = waiter.wait(share.id, WAIT_S)
    finally:
        waiter.close()
    assert paid["status"] == "paid"
    amount = int(paid["amount"] * USDC)
    assert amount > 0
    assert user(stack, own["agent"], 1)["quote_balance"] == 200 * USDC - amount
    assert user(stack, own["agent"], 0)["quote_balance"] == 800 * USDC  # 1000 - 200 moved


def test_bots_sharing_sub_account_0_are_moved_by_the_migration_step(stack: Stack) -> None:
    first = stack.new_bot()
    later = second_bot(stack, first, "--no-venue")
    assert later["made"]["sub_account"] == {
        "id": 1, "venue": "skipped (--no-venue)", "created_ids": [], "funded_usd": "0",
        "funding": None, "signatures": []}
    # as migration 0011 leaves a bot created before per-bot sub-accounts
    stack.db.execute("UPDATE trading_bots SET drift_subaccount_id = 0,"
                     " drift_subaccount_shared = true WHERE id = %s", (later["bot_id"],))
    assert stack.cli("bot", "show", later["bot_id"])["sub_account"] == {
        "id": 0, "shared": True, "shared_with": [first["bot_id"]], "moved_from": None}

    fire(stack, first, OPEN_LONG)  # sub-account 0 now holds a SOL-PERP position
    code, report = cli_code(stack, "bot", "migrate-subaccounts")
    assert code == 1 and report["blocked"] == 1 and report["still_shared"] == 1
    (entry,) = report["bots"]
    assert entry["status"] == "blocked" and "holds a position" in entry["reason"]

    fire(stack, first, CLOSE_LONG)
    dry = stack.cli("bot", "migrate-subaccounts", "--dry-run")
    assert [(b["status"], b["to"], b["create_ids"]) for b in dry["bots"]] == [
        ("would move", 1, [1])]
    assert user(stack, first["agent"], 1) is None  # a dry run sends nothing
    done = stack.cli("bot", "migrate-subaccounts")
    (moved,) = done["bots"]
    assert (moved["status"], moved["from"], moved["to"], moved["funded_usd"]) == (
        "moved", 0, 1, "100")  # max position 500 / leverage 5
    assert done["still_shared"] == 0
    assert stack.cli("bot", "show", later["bot_id"])["sub_account"] == {
        "id": 1, "shared": False, "shared_with": [], "moved_from": 0}
    assert user(stack, first["agent"], 1)["quote_balance"] == 100 * USDC

    fire(stack, later, OPEN_LONG)  # the moved bot trades on its own account now
    assert position(stack, first["agent"], 1) > 0 and position(stack, first["agent"], 0) == 0
    assert stack.cli("bot", "migrate-subaccounts")["bots"] == []
