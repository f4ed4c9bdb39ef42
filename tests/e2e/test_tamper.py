"""Authenticated money rows: each one edited or inserted by SQL reaches the sandbox with
nothing, and a refusal with its reason is recorded. Real tree, real sandbox, real MACs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from actors.messages import PayDue
from storage.profit_shares import share_for_trade
from storage.retry_queue import JobWaiter, NewJob, enqueue
from supervision import request, whereis
from tests.e2e import test_guard_everywhere
from tests.e2e.stack import Stack
from tests.e2e.test_profit_share import (
    CLOSE_LONG,
    OPEN_LONG,
    WAIT_S,
    copy_trading,
    oracle,
    profitable_round_trip,
    run_alert,
    share_waiter,
    wallet_quote,
    withdrawals,
)

OPEN_AGAIN = "order buy @ 2 filled on SOLUSD. New strategy position is 2"  # not a duplicate
stack = test_guard_everywhere.stack  # the fast-IOU Stack fixture


def refusals(stack: Stack, bot_id: str) -> list[str]:
    """The refusal reasons recorded for a bot, oldest first."""
    return [r["reason"] for r in stack.db.fetchall(
        "SELECT reason FROM trade_refusals WHERE trading_bot_id = %s ORDER BY id", (bot_id,))]


def traded_bot(stack: Stack) -> dict[str, Any]:
    """A bot that has traded once (so its rows are MAC'd) and is flat again."""
    bot = stack.new_bot(max_usd="300")
    assert stack.wait(stack.alert(bot, OPEN_LONG).json()["signal_id"])
    assert stack.wait(stack.alert(bot, CLOSE_LONG).json()["signal_id"])
    assert stack.position(bot["agent"]) == 0
    return bot


def pay_due(stack: Stack) -> None:
    """Ask the profit_share actor for a sweep now (its tick does the same)."""
    request(whereis(stack.root, "profit_share", 5), PayDue(), 10)


def sibling_subaccount(stack: Stack, bot: dict[str, Any]) -> str:
    """The (funded, live) sub-account of a second bot on the same wallet."""
    other = stack.cli("bot", "create", "--wallet", bot["wallet"], "--market", "SOL-PERP",
                      "--leverage", "5", "--max-position-usd", "300")
    row = stack.db.fetchone("SELECT drift_subaccount_id FROM trading_bots WHERE id = %s",
                            (other["bot_id"],))
    assert row["drift_subaccount_id"] != 0
    stack.db.execute("UPDATE trading_bots SET drift_subaccount_id = 99 WHERE id = %s",
                     (other["bot_id"],))  # makes room (one bot per sub-account)
    return str(row["drift_subaccount_id"])


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("max_position_size", "100000", "policy_hmac_mismatch"),
    ("leverage", "20", "policy_hmac_mismatch"),
    ("market_index", "1", "bot_binding_mac_mismatch"),
    ("drift_subaccount_id", "sibling", "bot_binding_mac_mismatch"),
])
def test_an_edited_bot_row_trades_nothing(stack: Stack, column: str, value: str,
                                          reason: str) -> None:
    bot = traded_bot(stack)
    if value == "sibling":  # another bot's sub-account of the same wallet: one that trades
        value = sibling_subaccount(stack, bot)
    sent_before = stack.orders_reaching_sandbox(bot["agent"])
    stack.db.execute(f"UPDATE trading_bots SET {column} = %s WHERE id = %s",
                     (value, bot["bot_id"]))
    signal_id = stack.alert(bot, OPEN_AGAIN).json()["signal_id"]
    stack.wait(signal_id)
    (trade,) = stack.trades(signal_id)
    assert trade["status"] == "failed" and trade["error_message"] == f"refused: {reason}"
    assert refusals(stack, bot["bot_id"]) == [reason]
    assert stack.orders_reaching_sandbox(bot["agent"]) == sent_before


def test_edited_publication_terms_pay_nothing(stack: Stack) -> None:
    source, follower = copy_trading(stack)
    oracle(stack, 150)
    run_alert(stack, source, follower, OPEN_LONG)  # the subscriber's open checks the terms
    before = wallet_quote(stack, source["wallet"])
    stack.db.execute("UPDATE published_bots SET profit_share_percent = 90"
                     " WHERE trading_bot_id = %s", (source["bot_id"],))
    oracle(stack, 165)
    close = run_alert(stack, source, follower, CLOSE_LONG)  # a close is never held back
    assert close["status"] == "completed" and stack.position(follower["agent"]) == 0
    assert share_for_trade(stack.db, close["id"]) is None
    assert refusals(stack, follower["bot_id"]) == ["publication_terms_mac_mismatch"]
    pay_due(stack)
    assert withdrawals(stack, follower["agent"]) == 0
    assert wallet_quote(stack, source["wallet"]) == before


def test_an_inserted_iou_is_refused_and_nothing_is_withdrawn(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack)
    real = share_for_trade(stack.db, close["id"])
    assert real is not None
    with share_waiter(stack) as waiter:
        assert waiter.wait(real.id, WAIT_S)["status"] == "paid"
        opened = stack.db.fetchone("SELECT id FROM bot_trades WHERE trading_bot_id = %s AND"
                                   " NOT reduce_only", (follower["bot_id"],))
        forged: list[str] = []
        for mac in (None, real.share_mac):  # no MAC; a valid MAC copied from another IOU
            row = stack.db.fetchone(
                "INSERT INTO pending_profit_shares (idempotency_key, subscriber_bot_id,"
                " published_bot_id, trade_id, subscriber_wallet_address, creator_wallet_address,"
                " amount, realized_pnl, profit_share_percent, share_mac) SELECT %s,"
                " subscriber_bot_id, published_bot_id, %s, subscriber_wallet_address,"
                " creator_wallet_address, 50, 500, profit_share_percent, %s"
                " FROM pending_profit_shares WHERE id = %s RETURNING id",
                (f"forged-{len(forged)}", opened["id"], mac, real.id))
            forged.append(row["id"])
        pay_due(stack)
        voided = [waiter.wait(share_id, WAIT_S) for share_id in forged]
    assert [v["status"] for v in voided] == ["void", "void"]
    assert [v["void_reason"] for v in voided] == ["refused: profit_share_mac_missing",
                                                  "refused: profit_share_mac_mismatch"]
    assert withdrawals(stack, follower["agent"]) == 1  # the real payment only
    assert wallet_quote(stack, source["wallet"]) - before == int(real.amount * 10**6)
    assert refusals(stack, follower["bot_id"]) == ["profit_share_mac_missing",
                                                   "profit_share_mac_mismatch"]


def test_a_payment_set_back_to_pending_is_not_paid_twice(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack)
    share = share_for_trade(stack.db, close["id"])
    assert share is not None
    with share_waiter(stack) as waiter:
        paid = waiter.wait(share.id, WAIT_S)
        assert paid["status"] == "paid"
        stack.db.execute("UPDATE pending_profit_shares SET status = 'pending',"
                         " paid_tx_signature = NULL, paid_at = NULL, next_attempt_at = now()"
                         " WHERE id = %s", (share.id,))
        pay_due(stack)
        again = waiter.wait(share.id, WAIT_S, until=lambda r: r["status"] == "paid")
    assert again["paid_tx_signature"] == paid["paid_tx_signature"]
    assert withdrawals(stack, follower["agent"]) == 1
    assert wallet_quote(stack, source["wallet"]) - before == int(paid["amount"] * 10**6)
    assert refusals(stack, follower["bot_id"]) == ["profit_share_already_paid"]


def test_a_raised_retry_size_sends_nothing(stack: Stack) -> None:
    bot = traded_bot(stack)
    sent_before = stack.orders_reaching_sandbox(bot["agent"])
    job_id = enqueue(stack.db, NewJob(bot_id=bot["bot_id"], wallet_address=bot["wallet"],
                                      market="SOL-PERP", side="long", size=Decimal("0.1"),
                                      reduce_only=False, priority="normal", max_attempts=5),
                     delay_s=3600, ring=stack.services.ring)
    waiter = JobWaiter(stack.env["DATABASE_URL"])
    try:
        stack.db.execute("UPDATE trade_retry_queue SET size = 100, next_retry_at = now()"
                         " WHERE id = %s", (job_id,))
        failed = waiter.wait(job_id, ("done", "failed"), WAIT_S)
    finally:
        waiter.close()
    assert failed["status"] == "failed"
    assert failed["last_error"] == "refused: retry_job_mac_mismatch"
    assert refusals(stack, bot["bot_id"]) == ["retry_job_mac_mismatch"]
    assert stack.orders_reaching_sandbox(bot["agent"]) == sent_before
    assert stack.position(bot["agent"]) == 0
