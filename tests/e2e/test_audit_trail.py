"""The audit trail and the Swift metrics on a live tree: what one order writes and counts.

Each test fires real alerts through the webhook and reads bot_trades, swift_order_logs and the
retry queue from PostgreSQL, and the Prometheus registry of this process (deltas: the registry
is shared by every test of the session).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY

from storage.retry_queue import JobWaiter
from tests.e2e.stack import ADMIN, Stack

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
CLOSE_LONG = "order sell @ 1 filled on SOLUSD. New strategy position is 0"


class Counts:
    """Swift counters of this process, read before and after a flow."""

    SERIES = {
        "orders": ("swift_orders_total", {"market": "SOL-PERP"}),
        "success": ("swift_orders_success_total", {"market": "SOL-PERP"}),
        "fallback": ("swift_orders_fallback_total", {"market": "SOL-PERP"}),
        "audit_failures": ("swift_audit_log_failures_total", {"event": "placed"}),
    }

    def __init__(self) -> None:
        self.start = self.read()

    @staticmethod
    def read() -> dict[str, float]:
        values = {key: REGISTRY.get_sample_value(name, labels)
                  for key, (name, labels) in Counts.SERIES.items()}
        assert None not in values.values(), values  # known label values exist from the start
        values["failed"] = sum(
            s.value for family in REGISTRY.collect() if family.name == "swift_orders_failed"
            for s in family.samples if s.name == "swift_orders_failed_total")
        return values  # type: ignore[return-value]

    def delta(self) -> dict[str, float]:
        now = self.read()
        return {key: now[key] - self.start[key] for key in now}


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, (name, labels)  # primed at 0
    return value


def events(stack: Stack, trade_id: str) -> list[dict[str, Any]]:
    return stack.db.fetchall(
        "SELECT event_type, error_code, error_message, response_payload, latency_ms"
        " FROM swift_order_logs WHERE trade_id = %s ORDER BY created_at, timestamp", (trade_id,))


def summary(stack: Stack) -> dict[str, Any]:
    answer = requests.get(f"{stack.admin_url}/api/admin/swift-metrics", timeout=10,
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_ratios_in_unit_interval(body: dict[str, Any]) -> None:
    for key in ("successRate", "fallbackRate", "failureRate"):
        assert 0 <= body["summary"][key] <= 1, (key, body["summary"])
    for market, row in body["byMarket"].items():
        assert 0 <= row["successRate"] <= 1 and 0 <= row["fallbackRate"] <= 1, (market, row)


def test_a_swift_fill_is_audited_with_latency_and_price_improvement(stack: Stack) -> None:
    counts = Counts()
    bot = stack.new_bot(max_usd="300")
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["swift_status"]) == ("swift", "filled")
    assert trade["swift_submitted_at"] and trade["swift_filled_at"]
    assert trade["auction_duration_ms"] > 0 and trade["price_improvement"] is not None
    assert trade["keeper_pubkey"] is None  # not in the fill read (README, "Audit trail")
    logged = events(stack, trade["id"])
    assert [e["event_type"] for e in logged] == ["submitted", "accepted", "placed", "filled"]
    assert all(e["latency_ms"] is not None for e in logged[1:])
    assert logged[1]["response_payload"]["http_status"] == 200
    filled = logged[-1]["response_payload"]
    assert filled["price_improvement_bps"] == pytest.approx(
        float(trade["price_improvement"]) * 100, abs=0.006)  # the column keeps 4 decimals of %
    assert counts.delta() == {"orders": 1, "success": 1, "fallback": 0, "failed": 0,
                              "audit_failures": 0}
    body = summary(stack)
    market = body["byMarket"]["SOL-PERP"]
    mean = sample("swift_avg_price_improvement_by_market", market="SOL-PERP")
    assert market["avgPriceImprovementBps"] == pytest.approx(mean)
    assert sample("swift_price_improvement_bps_count", market="SOL-PERP") >= 1
    if sample("swift_price_improvement_bps_count", market="SOL-PERP") == 1:  # ours alone
        assert mean == pytest.approx(filled["price_improvement_bps"])
    assert body["summary"]["avgPriceImprovementBps"] != 0 or mean == 0


def test_a_refusal_about_the_account_is_audited_and_is_no_swift_failure(stack: Stack) -> None:
    """insufficient_collateral (23 characters, over the original VARCHAR(20)) reaches the log."""
    counts = Counts()
    refused_before = sample("swift_errors_by_type_total", type="permanent",
                            reason="insufficient_collateral")
    # 50x on 10 USD sizes 500 USD of SOL; the venue's 20x margin wants 25 USD
    bot = stack.new_bot(leverage="50", max_usd="500", fund="10")
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "failed"}
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["status"], trade["swift_status"]) == (
        "swift", "failed", "failed")
    logged = events(stack, trade["id"])
    assert [e["event_type"] for e in logged] == ["submitted", "failed"]
    failed = logged[-1]
    assert failed["error_code"] == "insufficient_collateral"
    assert "InsufficientCollateral" in failed["error_message"]
    assert failed["response_payload"]["http_status"] == 400
    assert failed["response_payload"]["kind"] == "permanent"
    assert counts.delta() == {"orders": 1, "success": 0, "fallback": 0, "failed": 0,
                              "audit_failures": 0}
    assert sample("swift_errors_by_type_total", type="permanent",
                  reason="insufficient_collateral") == refused_before + 1


def test_an_auction_without_makers_falls_back_and_is_no_failure(stack: Stack) -> None:
    counts = Counts()
    expired_before = sample("swift_fallback_reasons_total", reason="not_filled")
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_makers_paused=True)  # no auction makers; the AMM still fills on-chain
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["swift_status"], trade["status"]) == (
        "legacy", "fallback", "completed")
    expired = events(stack, trade["id"])[-1]
    assert (expired["event_type"], expired["error_code"]) == ("expired", "not_filled")
    assert expired["latency_ms"] is not None
    assert counts.delta() == {"orders": 1, "success": 0, "fallback": 1, "failed": 0,
                              "audit_failures": 0}
    assert sample("swift_fallback_reasons_total", reason="not_filled") == expired_before + 1


def test_swift_answering_503_fails_its_orders_and_the_trade_falls_back(stack: Stack) -> None:
    """A 503 is Swift failing: each refused Swift order is a failure; the trade that then goes
    on-chain is one fallback."""
    counts = Counts()
    unavailable_before = sample("swift_orders_failed_total", reason="unavailable")
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_status=503)
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["swift_status"], trade["status"]) == (
        "legacy", "fallback", "completed")
    logged = events(stack, trade["id"])
    sent = sum(e["event_type"] == "submitted" for e in logged)
    refused = [e for e in logged if e["event_type"] == "failed"]
    assert sent >= 1 and len(refused) == sent
    assert {(e["error_code"], e["response_payload"]["http_status"]) for e in refused} == {
        ("unavailable", 503)}
    assert counts.delta() == {"orders": sent, "success": 0, "fallback": 1, "failed": sent,
                              "audit_failures": 0}
    assert sample("swift_orders_failed_total", reason="unavailable") == unavailable_before + sent
    assert_ratios_in_unit_interval(summary(stack))


@pytest.mark.parametrize("stack", [{"SWIFT_RATE_BURST": "1", "SWIFT_RATE_PER_S": "0.1"}],
                         indirect=True)
def test_orders_the_gateway_never_sent_count_as_orders(stack: Stack) -> None:
    """Over the rate budget the gateway answers not_sent and the orders fall back: they are
    Swift orders all the same, so the fallback rate cannot pass 1."""
    counts = Counts()
    not_sent_before = sample("swift_fallback_reasons_total", reason="rate_budget")
    source, _ = stack.published_with_subscribers(2)
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    copies = [r["id"] for r in stack.db.fetchall(
        "SELECT id FROM webhook_signals WHERE parent_signal_id = %s", (signal_id,))]
    assert len(copies) == 2
    assert set(stack.wait(*copies).values()) == {"done"}
    trades = [t for s in (signal_id, *copies) for t in stack.trades(s)]
    # the first order takes the one token; an order that waits past its auction window is not
    # sent (one arriving after the 10 s refill may take the new token)
    not_sent = [t for t in trades if t["swift_status"] == "fallback"]
    assert 1 <= len(not_sent) <= 2 and len(trades) == 3
    assert all(t["swift_order_id"] is None for t in not_sent)  # nothing left the process
    assert {t["fallback_reason"] for t in not_sent} == {"swift_not_sent:rate_budget"}
    assert {t["swift_status"] for t in trades if t not in not_sent} == {"filled"}
    assert counts.delta() == {"orders": 3, "success": 3 - len(not_sent),
                              "fallback": len(not_sent), "failed": 0, "audit_failures": 0}
    assert sample("swift_fallback_reasons_total", reason="rate_budget") == (
        not_sent_before + len(not_sent))
    assert_ratios_in_unit_interval(summary(stack))


def test_an_audit_row_that_cannot_be_written_is_counted(stack: Stack) -> None:
    counts = Counts()
    stack.db.execute("ALTER TABLE swift_order_logs ADD CONSTRAINT refuse_placed"
                     " CHECK (event_type <> 'placed') NOT VALID")
    bot = stack.new_bot(max_usd="300")
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}  # trading goes on
    (trade,) = stack.trades(signal_id)
    assert (trade["status"], trade["swift_status"]) == ("completed", "filled")
    assert [e["event_type"] for e in events(stack, trade["id"])] == [
        "submitted", "accepted", "filled"]
    assert counts.delta() == {"orders": 1, "success": 1, "fallback": 0, "failed": 0,
                              "audit_failures": 1}


def test_a_failed_close_queues_a_job_with_its_swift_order_and_entry_price(
        stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    opened = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(opened) == {opened: "done"}
    (open_trade,) = stack.trades(opened)
    assert open_trade["status"] == "completed"
    stack.cli("bot", "swift", bot["bot_id"], "--on", "--fallback", "off")
    stack.faults(swift_status=503)  # every Swift order of the close is refused
    closed = stack.alert(bot, CLOSE_LONG).json()["signal_id"]
    stack.wait(closed)
    close_trade = stack.trades(closed)[0]
    assert (close_trade["status"], close_trade["swift_status"]) == ("failed", "failed")
    job = stack.db.fetchone("SELECT * FROM trade_retry_queue WHERE original_trade_id = %s",
                            (close_trade["id"],))
    assert job is not None and job["reduce_only"]
    swift_ids = {r["swift_order_id"] for r in stack.db.fetchall(
        "SELECT swift_order_id FROM bot_trades WHERE trading_bot_id = %s"
        " AND swift_order_id IS NOT NULL", (bot["bot_id"],))}
    assert job["swift_order_id"] in swift_ids - {open_trade["swift_order_id"]}
    # the entry price of the long being closed: what the open paid
    assert abs(job["entry_price"] - open_trade["price"]) <= Decimal("0.000002")

    stack.faults()
    # Swift is marked unhealthy for 30 s after those refusals, and without fallback the retry
    # waits for it: allowing the fallback again lets the next attempt go on-chain at once
    stack.cli("bot", "swift", bot["bot_id"], "--on", "--fallback", "on")
    waiter = JobWaiter(stack.env["DATABASE_URL"])
    try:
        done = waiter.wait(job["id"], ("done", "failed"), 60)
    finally:
        waiter.close()
    assert done["status"] == "done" and stack.position(bot["agent"]) == 0
    last_swift = stack.db.fetchone(
        "SELECT swift_order_id FROM bot_trades WHERE trading_bot_id = %s"
        " AND swift_order_id IS NOT NULL ORDER BY created_at DESC LIMIT 1", (bot["bot_id"],))
    assert done["swift_order_id"] == last_swift["swift_order_id"]
    assert done["entry_price"] == job["entry_price"]
