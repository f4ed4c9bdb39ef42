"""Through the whole stack: Swift retries of retryable refusals (429, 503, slot too old), live
flags, and the SignedMsgUserOrders check (real database, real sandbox over HTTP with faults)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey

from actors.messages import CurrentFlags
from storage.retry_queue import JobWaiter, NewJob, enqueue
from supervision import Status, whereis
from tests.e2e.stack import WAIT_S, Stack
from trading.retry_policy import CRITICAL
from trading.routing import SwiftFlags


def alert(n: int, action: str = "buy", position: int = 1) -> str:
    return (f'{{"action": "{action}", "contracts": 1, "position_size": {position},'
            f' "timenow": "2026-11-21T10:00:{n:02d}Z"}}')


def run(stack: Stack, bot: dict[str, Any], body: str) -> tuple[str, dict[str, Any]]:
    """Fire one alert, wait for its signal; (status, its only trade)."""
    signal_id = stack.alert(bot, body, "application/json").json()["signal_id"]
    status = stack.wait(signal_id)[signal_id]
    (trade,) = stack.trades(signal_id)
    return status, trade


def swift_events(stack: Stack, trade_id: str) -> list[tuple[str, str, str | None]]:
    """(swift_order_id, event_type, error_code) of a trade, in order."""
    return [(r["swift_order_id"], r["event_type"], r["error_code"]) for r in stack.db.fetchall(
        "SELECT swift_order_id, event_type, error_code FROM swift_order_logs WHERE trade_id = %s"
        " ORDER BY created_at, id", (trade_id,))]


def submitted(stack: Stack, trade_id: str) -> list[str]:
    return [uuid for uuid, event, _ in swift_events(stack, trade_id) if event == "submitted"]


def current_flags(stack: Stack) -> SwiftFlags:
    return whereis(stack.root, "flags", 5).ask(CurrentFlags(), timeout=5)


FLAGS_WAIT_S = 10.0


def flags_applied(stack: Stack, **expected: Any) -> None:
    """Wait until the flags actor holds `expected`, looked at every sandbox slot (100 ms); a
    failure after FLAGS_WAIT_S (how fast it is, is measured, not asserted: shared machines are
    noisy)."""
    clock = stack.sandbox.exchange.clock
    started = time.monotonic()
    while any(getattr(current_flags(stack), k) != v for k, v in expected.items()):
        assert time.monotonic() - started < FLAGS_WAIT_S, f"not applied: {current_flags(stack)}"
        clock.wait_for_slot(clock.slot + 1, FLAGS_WAIT_S)


# --- Swift retries -----------------------------------------------------------------------------


def test_a_429_is_signed_again_and_retried_on_swift_within_the_order(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_status=429, swift_status_count=1)
    status, trade = run(stack, bot, alert(1))
    assert status == "done"
    assert (trade["execution_method"], trade["status"], trade["fallback_reason"]) == (
        "swift", "completed", None)
    events = swift_events(stack, trade["id"])
    first, second = submitted(stack, trade["id"])
    assert first != second  # a retry of a refused order is a new order (its own uuid)
    assert (first, "failed", "rate_limited") in events
    assert (second, "filled", None) in events and trade["swift_order_id"] == second
    assert stack.sandbox_stats(bot["agent"]).get("transactions_received", 0) == 0  # no legacy
    assert stack.position(bot["agent"]) > 0


def test_three_503s_go_legacy_after_the_configured_retries(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_status=503, swift_status_count=3)  # then Swift would answer again
    status, trade = run(stack, bot, alert(1))
    assert status == "done"
    assert (trade["execution_method"], trade["status"], trade["fallback_reason"]) == (
        "legacy", "completed", "swift_rejected:unavailable")
    assert len(set(submitted(stack, trade["id"]))) == 3  # SWIFT_MAX_RETRIES_BEFORE_FALLBACK=2
    assert stack.sandbox_stats(bot["agent"]).get("transactions_received", 0) == 1


def close_failing_on_swift(stack: Stack, bot: dict[str, Any], status: int
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open a position, turn the bot's fallback off, then close it while Swift refuses every
    order with `status`: (the close's first trade, its retry job)."""
    assert run(stack, bot, alert(1))[1]["execution_method"] == "swift"
    stack.cli("bot", "swift", bot["bot_id"], "--on", "--fallback", "off")
    stack.faults(swift_status=status)
    signal_id = stack.alert(bot, alert(2, "sell", 0), "application/json").json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "failed"}
    trade = stack.trades(signal_id)[0]
    assert (trade["execution_method"], trade["status"]) == ("swift", "failed")
    assert len(set(submitted(stack, trade["id"]))) == 3  # re-signed and retried on Swift
    (job,) = stack.db.fetchall("SELECT * FROM trade_retry_queue WHERE original_trade_id = %s",
                               (trade["id"],))
    assert job["swift_attempts"] == 3 and job["priority"] == "critical"
    return trade, job


def last_attempt_ends(stack: Stack, job_id: str) -> dict[str, Any]:
    """Fast-forward a critical retry job to its last attempt (as if nine had failed) and
    return the job once it has ended."""
    stack.db.execute("UPDATE trade_retry_queue SET attempts = %s WHERE id = %s",
                     (CRITICAL.max_attempts - 1, job_id))
    waiter = JobWaiter(stack.env["DATABASE_URL"])
    try:
        return waiter.wait(job_id, ("done", "failed"), WAIT_S)
    finally:
        waiter.close()


def system_pause(stack: Stack, bot_id: str) -> tuple[str, str]:
    """(who paused the bot, why) as `bot status` shows it."""
    (view,) = [v for v in stack.cli("bot", "status")["bots"] if v["id"] == bot_id]
    assert view["active"] is False
    return view["paused_by"], view["paused_reason"]


@pytest.mark.parametrize("stack", [{"SWIFT_FAILURES_UNHEALTHY": "100"}], indirect=True)
def test_a_bot_without_fallback_retries_on_swift_then_records_the_failure(
        stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    trade, job = close_failing_on_swift(stack, bot, 429)  # Swift stays healthy meanwhile
    held = stack.position(bot["agent"])
    ended = last_attempt_ends(stack, job["id"])
    assert (ended["status"], ended["last_error"]) == ("failed", "rate_limited")
    assert ended["swift_attempts"] > 3  # its Swift was used up, and it went to Swift again
    retried = stack.db.fetchall("SELECT execution_method, status, error_message FROM bot_trades"
                                " WHERE signal_id = %s AND id <> %s",
                                (trade["signal_id"], trade["id"]))
    assert retried and all(r == {"execution_method": "swift", "status": "failed",
                                 "error_message": "rate_limited"} for r in retried)
    assert stack.sandbox_stats(bot["agent"]).get("transactions_received", 0) == 0  # no legacy
    assert stack.position(bot["agent"]) == held  # the failure is loud: recorded, bot paused
    assert [t["status"] for t in stack.story(trade["signal_id"])["trades"]] == [
        "failed"] * (1 + len(retried))
    paused_by, reason = system_pause(stack, bot["bot_id"])
    assert paused_by == "system" and reason.startswith("retry gave up after")
    assert reason.endswith(": rate_limited")
    stack.faults()  # a system pause lets the bot's closes through: the next one ends the risk
    status, closed = run(stack, bot, alert(3, "sell", 0))
    assert (status, closed["execution_method"]) == ("done", "swift")
    assert stack.position(bot["agent"]) == 0


def test_without_fallback_a_retry_waits_for_an_unhealthy_swift_instead_of_going_on_chain(
        stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    # three failed POSTs in a row mark Swift unhealthy (for 30 s at least)
    trade, job = close_failing_on_swift(stack, bot, 503)
    held = stack.position(bot["agent"])
    ended = last_attempt_ends(stack, job["id"])
    assert (ended["status"], ended["last_error"]) == ("failed", "swift_unhealthy")
    assert ended["swift_attempts"] == 3 and len(stack.trades(trade["signal_id"])) == 1
    assert stack.orders_reaching_sandbox(bot["agent"]) == 1  # the open: nothing on-chain
    assert stack.position(bot["agent"]) == held
    assert system_pause(stack, bot["bot_id"])[0] == "system"


# --- live flags --------------------------------------------------------------------------------


def test_flags_set_swift_enabled_false_applies_to_the_next_alert_without_a_restart(
        stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    assert run(stack, bot, alert(1))[1]["execution_method"] == "swift"
    changed = stack.cli("flags", "set", "SWIFT_ENABLED", "false", "--reason", "drill",
                        "--by", "on-call")
    assert changed["previous"] is True and changed["previous_source"] == "environment"
    flags_applied(stack, enabled=False)
    status, trade = run(stack, bot, alert(2, "sell", 0))
    assert status == "done"
    assert (trade["execution_method"], trade["fallback_reason"]) == ("legacy", "swift_disabled")
    shown = stack.cli("flags", "show")
    assert shown["flags"]["SWIFT_ENABLED"] | {"updated_at": None} == {
        "value": False, "source": "database", "environment_value": True,
        "updated_by": "on-call", "updated_at": None}
    (change,) = shown["changes"]
    assert (change["flag"], change["old_value"], change["new_value"], change["changed_by"],
            change["reason"]) == ("SWIFT_ENABLED", None, False, "on-call", "drill")
    stack.cli("flags", "reset", "SWIFT_ENABLED")  # back to the environment's value
    flags_applied(stack, enabled=True)
    assert run(stack, bot, alert(3))[1]["execution_method"] == "swift"
    tree = stack.root.ask(Status(), timeout=10)["children"]
    assert tree["flags"]["restarts"] == 0
    assert tree["bots"]["children"][f"bot-{bot['bot_id']}"]["restarts"] == 0


def test_retry_with_swift_off_sends_a_refused_order_legacy_at_once(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.cli("flags", "set", "SWIFT_RETRY_WITH_SWIFT", "false")
    flags_applied(stack, retry_with_swift=False)
    stack.faults(swift_status=429, swift_status_count=1)
    status, trade = run(stack, bot, alert(1))
    assert status == "done"
    assert (trade["execution_method"], trade["fallback_reason"]) == (
        "legacy", "swift_rejected:rate_limited")
    assert len(submitted(stack, trade["id"])) == 1


def test_fallback_off_globally_records_the_swift_failure(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.cli("flags", "set", "SWIFT_FALLBACK_ENABLED", "off")
    stack.cli("flags", "set", "SWIFT_RETRY_WITH_SWIFT", "false")
    flags_applied(stack, fallback_enabled=False, retry_with_swift=False)
    stack.faults(swift_status=503, swift_status_count=1)
    status, trade = run(stack, bot, alert(1))
    assert status == "failed"
    assert (trade["execution_method"], trade["status"], trade["error_message"]) == (
        "swift", "failed", "unavailable")
    assert stack.orders_reaching_sandbox(bot["agent"]) == 0


def test_with_fallback_off_globally_a_job_whose_swift_is_used_up_stays_on_swift(
        stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.cli("flags", "set", "SWIFT_FALLBACK_ENABLED", "off")
    flags_applied(stack, fallback_enabled=False)
    # the first attempt and SWIFT_MAX_RETRIES_BEFORE_FALLBACK=2 retries: with a fallback
    # allowed, this job would go on-chain (tests/e2e/test_retries.py)
    job_id = enqueue(stack.db, NewJob(bot_id=bot["bot_id"], wallet_address=bot["wallet"],
                                      market="SOL-PERP", side="long", size=Decimal(1),
                                      reduce_only=False, priority="normal", max_attempts=5,
                                      swift_attempts=3),
                     ring=stack.services.ring)
    waiter = JobWaiter(stack.env["DATABASE_URL"])
    try:
        assert waiter.wait(job_id, ("done", "failed"), WAIT_S)["status"] == "done"
    finally:
        waiter.close()
    (trade,) = stack.db.fetchall("SELECT * FROM bot_trades WHERE trading_bot_id = %s",
                                 (bot["bot_id"],))
    assert (trade["execution_method"], trade["status"]) == ("swift", "completed")
    assert stack.sandbox_stats(bot["agent"]).get("transactions_received", 0) == 0


# --- SignedMsgUserOrders ------------------------------------------------------------------------


def test_an_authority_without_signed_msg_user_orders_trades_on_chain(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    exchange = stack.sandbox.exchange
    with exchange.lock:  # as if the account had never been created
        exchange.signed_msg.pop(Pubkey.from_string(bot["agent"]))
    status, trade = run(stack, bot, alert(1))
    assert status == "done"
    assert (trade["execution_method"], trade["status"], trade["fallback_reason"]) == (
        "legacy", "completed", "no_signed_msg_user_orders")
    assert stack.sandbox_stats(bot["agent"]).get("swift_orders_received", 0) == 0
    assert stack.cli("wallet", "init-orders", bot["wallet"])["state"] == "created"
    assert Pubkey.from_string(bot["agent"]) in exchange.signed_msg


def test_a_stored_rollback_holds_from_the_first_order_after_a_restart(
        database_url: str, tmp_path: Path) -> None:
    first = Stack(database_url, tmp_path)
    first.cli("flags", "set", "SWIFT_ENABLED", "false")
    first.db.execute("INSERT INTO runtime_flags (key, value) VALUES"
                     " ('SWIFT_ROLLOUT_PERCENT', '\"10\"')")  # by hand, and wrong: ignored
    first.close(keep_sandbox=True)
    second = Stack(database_url, tmp_path, sandbox=first.sandbox)  # environment: enabled
    try:
        flags = current_flags(second)  # read at start, before any ask is answered
        assert not flags.enabled and flags.rollout_percent == 100
        bot = second.new_bot(max_usd="300")
        status, trade = run(second, bot, alert(1))
        assert (status, trade["fallback_reason"]) == ("done", "swift_disabled")
    finally:
        second.close()
