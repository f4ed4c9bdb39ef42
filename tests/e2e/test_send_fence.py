"""The send's fence: a daemon sends a bot's order only while it holds the bot's
lease at its epoch. An order that waited while the bot changed hands is not sent (not to Swift,
not on-chain), and the new holder waits for an on-chain order that may still land before it
sends anything again."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from solders.keypair import Keypair

from actors.legacy_executor import ExecutorClient
from actors.messages import LegacyOrder
from custody.signing_keys import open_bot_keypair
from storage.bot_leases import LeaseLost, acquire
from storage.retry_queue import JobWaiter, NewJob, enqueue
from storage.trades import NewTrade, mark_legacy_sending, open_trade
from tests.daemon import wait_until
from tests.e2e.stack import WAIT_S, Stack
from tests.e2e.test_paused_closes_and_venue_state import LogEvents, log_events
from venue.auction import LONG

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
LOST = "bot lease lost to another daemon"
HOLD_MS = 5000  # how long the first bot's POST holds the gateway's only slot on the wire


@pytest.fixture
def lease_lost() -> Iterator[LogEvents]:
    with log_events("actors.bot", LOST) as handler:
        yield handler


def swift_orders() -> float:
    """Orders handed to the Swift gateway so far (sent or waiting)."""
    return REGISTRY.get_sample_value("swift_orders_total", {"market": "SOL-PERP"}) or 0.0


def swift_posts(stack: Stack, agent: str) -> list[dict[str, Any]]:
    """Every POST /orders the sandbox saw from this authority, answered or in flight."""
    posts = requests.get(f"{stack.sandbox.url}/sandbox/swift-posts", timeout=5).json()["posts"]
    return [p for p in posts if p["authority"] == agent]


def hand_over(stack: Stack, bot_id: str) -> None:
    """Another daemon takes the bot over (a new epoch), for longer than the test lasts."""
    assert stack.db.execute(
        "UPDATE bot_leases SET holder = 'other', epoch = epoch + 1,"
        " expires_at = now() + interval '10 minutes' WHERE bot_id = %s", (bot_id,)) == 1


def swift_events(stack: Stack, trade_id: str) -> int:
    row = stack.db.fetchone("SELECT count(*) AS n FROM swift_order_logs WHERE trade_id = %s",
                            (trade_id,))
    assert row is not None
    return int(row["n"])


@pytest.mark.parametrize("stack", [{"SWIFT_MAX_IN_FLIGHT": "1",
                                    "SWIFT_ORDER_TIMEOUT_MS": str(3 * HOLD_MS)}], indirect=True)
def test_an_order_waiting_in_the_gateway_is_not_posted_once_its_bot_changed_hands(
        stack: Stack, lease_lost: LogEvents) -> None:
    first, second = stack.new_bot(max_usd="300"), stack.new_bot(max_usd="300")
    handed = swift_orders()
    stack.faults(swift_timeout=True, swift_timeout_process=False, hang_ms=HOLD_MS)
    holding = stack.alert(first, OPEN_LONG).json()["signal_id"]
    wait_until(lambda: any(p["status"] is None for p in swift_posts(stack, first["agent"])),
               "the first bot's POST holds the wire")
    waiting = stack.alert(second, OPEN_LONG).json()["signal_id"]
    wait_until(lambda: swift_orders() >= handed + 2, "the second bot's order waits in line")
    hand_over(stack, second["bot_id"])
    # the only slot on the wire was still taken: the second order was waiting when it happened
    assert any(p["status"] is None for p in swift_posts(stack, first["agent"]))

    lease_lost.wait(LOST)  # the gateway answered the bot LeaseLost when its turn came
    assert swift_posts(stack, second["agent"]) == []
    assert stack.orders_reaching_sandbox(second["agent"]) == 0  # no fallback on-chain either
    (trade,) = stack.trades(waiting)
    assert (trade["status"], trade["swift_status"], trade["tx_signature"]) == (
        "pending", None, None)  # for the new holder to reconcile: nothing of it was sent
    assert swift_events(stack, trade["id"]) == 0
    row = stack.db.fetchone("SELECT status FROM webhook_signals WHERE id = %s", (waiting,))
    assert row == {"status": "processing"}
    stack.faults()  # the gateway lives on: the first bot's order ends (its POST timed out)
    assert stack.wait(holding)[holding] in ("done", "partial", "failed")


def test_an_on_chain_order_is_not_sent_once_its_bot_changed_hands(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    epoch = acquire(stack.db, bot["bot_id"], stack.services.holder, 60)
    trade = open_trade(stack.db, NewTrade(bot["bot_id"], None, bot["wallet"], "SOL-PERP", "long",
                                          10**9, False, "legacy"), holder=stack.services.holder)
    signer = open_bot_keypair(stack.db, stack.services.ring, stack.services.settings,
                              bot["bot_id"], origin="retry")
    fence = partial(mark_legacy_sending, stack.db, trade, holder=stack.services.holder,
                    epoch=epoch)
    order = LegacyOrder(signer, signer.pubkey(), 0, 0, LONG, 10**9, False, 150_000_000, 50,
                        before_send=fence)
    hand_over(stack, bot["bot_id"])  # while the order is on its way to the executor
    with pytest.raises(LeaseLost):
        ExecutorClient(stack.services).place_and_take(order, WAIT_S)
    assert stack.orders_reaching_sandbox(bot["agent"]) == 0
    row = stack.db.fetchone("SELECT status, tx_signature FROM bot_trades WHERE id = %s",
                            (trade,))
    assert row == {"status": "pending", "tx_signature": None}


def test_an_unknown_on_chain_order_is_not_resent_while_it_may_still_land(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    trade = stack.db.fetchone(  # sent by a daemon that then lost the bot: its fate unrecorded
        "INSERT INTO bot_trades (trading_bot_id, wallet_address, market, side, size, status,"
        " execution_method, tx_signature, tx_last_valid_block_height)"
        " VALUES (%s, %s, 'SOL-PERP', 'long', 1, 'unknown', 'legacy', %s, %s) RETURNING id",
        (bot["bot_id"], bot["wallet"], str(Keypair().sign_message(b"lost")),
         stack.sandbox.exchange.slot + 1000))
    assert trade is not None
    job_id = enqueue(stack.db, NewJob(
        bot_id=bot["bot_id"], wallet_address=bot["wallet"], market="SOL-PERP", side="long",
        size=Decimal(1), reduce_only=False, priority="normal", max_attempts=5,
        original_trade_id=trade["id"], outcome_unknown=True, position_before=0),
        ring=stack.services.ring)
    jobs = JobWaiter(stack.env["DATABASE_URL"])
    try:
        waiting = jobs.wait(job_id, ("pending",), WAIT_S,  # back to pending after one look
                            until=lambda row: row["last_error"] is not None)
        assert waiting["outcome_unknown"] and waiting["attempts"] == 0
        assert "may still land" in waiting["last_error"]
        assert stack.orders_reaching_sandbox(bot["agent"]) == 0
        # its blockhash expired: it can never land now, so what is left is sent, once
        stack.db.execute("UPDATE bot_trades SET tx_last_valid_block_height = %s WHERE id = %s",
                         (stack.sandbox.exchange.slot - 1, trade["id"]))
        assert jobs.wait(job_id, ("done", "failed"), WAIT_S)["status"] == "done"
    finally:
        jobs.close()
    assert stack.position(bot["agent"]) == 10**9
    assert stack.orders_reaching_sandbox(bot["agent"]) == 1
