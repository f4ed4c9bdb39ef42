"""Path 4, the retry worker: remainders and transient failures are retried through the bot's
actor; an attempt whose outcome is unknown is reconciled from the venue, never resent blindly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from storage.database import Database
from storage.retry_queue import JobWaiter, NewJob, enqueue
from tests.e2e.stack import WAIT_S, Stack

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"


@pytest.fixture
def jobs(stack: Stack):
    waiter = JobWaiter(stack.env["DATABASE_URL"])
    yield waiter
    waiter.close()


def test_a_partial_fill_remainder_is_retried_until_the_position_is_whole(
        stack: Stack, jobs: JobWaiter) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.liquidity("partial", fraction=0.5)
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    (trade,) = stack.trades(signal_id)
    (job,) = stack.db.fetchall("SELECT id FROM trade_retry_queue WHERE original_trade_id = %s",
                               (trade["id"],))
    retries_before = REGISTRY.get_sample_value("swift_retries_total") or 0.0
    stack.liquidity("full")
    done = jobs.wait(job["id"], ("done", "failed"), WAIT_S)
    assert done["status"] == "done"
    assert REGISTRY.get_sample_value("swift_retries_total") == retries_before + 1
    assert stack.position(bot["agent"]) == int(trade["size"] * 10**9)
    retried = stack.db.fetchall("SELECT * FROM bot_trades WHERE signal_id = %s ORDER BY"
                                " created_at", (signal_id,))
    assert [t["status"] for t in retried] == ["partial", "completed"]


@pytest.mark.parametrize("stack", [{"SWIFT_ENABLED": "false"}], indirect=True)
def test_a_transient_on_chain_failure_is_retried_with_backoff(stack: Stack,
                                                             jobs: JobWaiter) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.faults(makers_paused=True)  # placeAndTake fills nothing: a transient failure
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "failed"}
    (job,) = stack.db.fetchall("SELECT * FROM trade_retry_queue WHERE signal_id = %s",
                               (signal_id,))
    assert job["last_error"] == "not_filled" and job["priority"] == "normal"
    stack.faults()  # the venue recovers
    done = jobs.wait(job["id"], ("done", "failed"), WAIT_S)
    assert done["status"] == "done" and done["attempts"] == 0
    assert stack.position(bot["agent"]) > 0


def test_an_unknown_outcome_that_filled_is_recorded_not_resent(stack: Stack,
                                                               jobs: JobWaiter) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.wait(stack.alert(bot, OPEN_LONG).json()["signal_id"])  # this order "was lost"
    held = stack.position(bot["agent"])
    sent_before = stack.orders_reaching_sandbox(bot["agent"])
    job_id = enqueue(stack.db, NewJob(bot_id=bot["bot_id"], wallet_address=bot["wallet"],
                                      market="SOL-PERP", side="long",
                                      size=Decimal(held) / 10**9, reduce_only=False,
                                      priority="normal", max_attempts=5),
                     ring=stack.services.ring)
    stack.db.execute("UPDATE trade_retry_queue SET outcome_unknown = true,"
                     " position_before_base = 0 WHERE id = %s", (job_id,))
    done = jobs.wait(job_id, ("done", "failed"), WAIT_S)
    assert done["status"] == "done"
    assert stack.orders_reaching_sandbox(bot["agent"]) == sent_before  # nothing sent again
    assert stack.position(bot["agent"]) == held


def test_an_unknown_outcome_that_did_not_trade_is_sent_once(stack: Stack,
                                                            jobs: JobWaiter) -> None:
    bot = stack.new_bot(max_usd="300")
    job_id = enqueue(stack.db, NewJob(bot_id=bot["bot_id"], wallet_address=bot["wallet"],
                                      market="SOL-PERP", side="short", size=Decimal("1.5"),
                                      reduce_only=False, priority="normal", max_attempts=5),
                     ring=stack.services.ring)
    stack.db.execute("UPDATE trade_retry_queue SET outcome_unknown = true,"
                     " position_before_base = 0 WHERE id = %s", (job_id,))
    done = jobs.wait(job_id, ("done", "failed"), WAIT_S)
    assert done["status"] == "done"
    assert stack.position(bot["agent"]) == -1_500_000_000
    assert stack.orders_reaching_sandbox(bot["agent"]) == 1


def test_a_job_whose_trade_used_its_swift_attempts_goes_on_chain(stack: Stack,
                                                                 jobs: JobWaiter) -> None:
    bot = stack.new_bot(max_usd="300")
    # the first attempt and SWIFT_MAX_RETRIES_BEFORE_FALLBACK=2 retries: Swift is used up
    job_id = enqueue(stack.db, NewJob(bot_id=bot["bot_id"], wallet_address=bot["wallet"],
                                      market="SOL-PERP", side="long", size=Decimal(1),
                                      reduce_only=False, priority="normal", max_attempts=5,
                                      swift_attempts=3), ring=stack.services.ring)
    assert jobs.wait(job_id, ("done", "failed"), WAIT_S)["status"] == "done"
    (trade,) = stack.db.fetchall("SELECT * FROM bot_trades WHERE trading_bot_id = %s",
                                 (bot["bot_id"],))
    assert (trade["execution_method"], trade["fallback_reason"]) == (
        "legacy", "swift_not_requested")
    assert stack.sandbox_stats(bot["agent"]).get("swift_orders_received", 0) == 0


def test_the_queue_survives_a_restart(database_url: str, tmp_path) -> None:
    first = Stack(database_url, tmp_path)
    bot = first.new_bot(max_usd="300")
    first.close(keep_sandbox=True)
    db = Database(database_url, size=1)
    job_id = enqueue(db, NewJob(bot_id=bot["bot_id"], wallet_address=bot["wallet"],
                                market="SOL-PERP", side="short", size=Decimal(1),
                                reduce_only=False, priority="critical", max_attempts=10),
                     ring=first.services.ring)
    db.close()
    second = Stack(database_url, tmp_path, sandbox=first.sandbox)
    waiter = JobWaiter(database_url)
    try:
        assert waiter.wait(job_id, ("done", "failed"), WAIT_S)["status"] == "done"
        assert second.position(bot["agent"]) == -1_000_000_000
    finally:
        waiter.close()
        second.close()


def test_an_unknown_outcome_is_not_resent_while_its_swift_auction_is_open(
        stack: Stack, jobs: JobWaiter) -> None:
    bot = stack.new_bot(max_usd="300")
    slot = stack.sandbox.exchange.slot
    trade = stack.db.fetchone(
        "INSERT INTO bot_trades (trading_bot_id, wallet_address, market, side, size, status,"
        " execution_method) VALUES (%s, %s, 'SOL-PERP', 'long', 1, 'unknown', 'swift')"
        " RETURNING id", (bot["bot_id"], bot["wallet"]))
    stack.db.execute(  # the attempt's order: recorded at submission, auction open 1000 slots
        "INSERT INTO swift_order_logs (trade_id, swift_order_id, event_type, request_payload)"
        " VALUES (%s, 'lostord1', 'submitted', %s)",
        (trade["id"], json.dumps({"hash_key": "bm90LWEtcmVhbC1zaWduYXR1cmUtaGFzaA==",
                                  "max_slot": slot + 1000})))
    job_id = enqueue(stack.db, NewJob(
        bot_id=bot["bot_id"], wallet_address=bot["wallet"], market="SOL-PERP", side="long",
        size=Decimal(1), reduce_only=False, priority="normal", max_attempts=5,
        original_trade_id=trade["id"], outcome_unknown=True, position_before=0),
        ring=stack.services.ring)
    waiting = jobs.wait(job_id, ("pending",), WAIT_S,  # back to pending after the first look
                        until=lambda row: row["last_error"] is not None)
    assert waiting["outcome_unknown"] and waiting["attempts"] == 0
    assert "not_found" in waiting["last_error"] and "auction open" in waiting["last_error"]
    assert stack.orders_reaching_sandbox(bot["agent"]) == 0
