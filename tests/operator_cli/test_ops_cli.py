"""Daily operations through the CLI against a real database: switches, stories, queues, IOUs.

The commands run as a real subprocess of `runtime.main`. Until operator_cli/__init__.py calls
`ops_commands.register`, the entry below adds them itself (and does nothing once it does).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from storage.copy_trading import insert_subscription, publish_bot
from storage.database import Database
from storage.profit_shares import NewShare, create_share
from storage.retry_queue import NewJob, enqueue
from storage.signals import copy_to_subscribers, finish_signal, record_signal
from storage.trades import NewTrade, log_swift_event, open_trade, update_trade
from tests.operator_cli.helpers import Cli, Result, make_bot, make_wallet

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("trading_bots", "webhook_signals", "bot_trades", "trade_retry_queue",
          "pending_profit_shares", "swift_order_logs")
ENTRY = """
import argparse, sys
import runtime, operator_cli
from operator_cli import ops_commands
original = operator_cli.register
def register(sub):
    original(sub)
    if "signal" not in sub.choices:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--json", action="store_true")
        ops_commands.register(sub, common)
operator_cli.register = register
sys.exit(runtime.main(sys.argv[1:]))
"""


@dataclass
class OpsCli(Cli):
    """`quantumvault ...` with the daily-operations commands registered."""

    def __call__(self, *args: str, env: Any = None) -> Result:
        """Run one command in a subprocess; every run is kept for the secret search."""
        merged = {**self.env, **(env or {}), "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", ENTRY, *args], env=merged,
                              capture_output=True, text=True, timeout=90, cwd=self.state_dir)
        result = Result(proc.returncode, proc.stdout, proc.stderr, args)
        self.runs.append(result)
        return result


@pytest.fixture
def ops(cli: Cli) -> OpsCli:
    """The CLI with the ops commands, on this test's database."""
    return OpsCli(cli.env, cli.state_dir)


@pytest.fixture
def bot(ops: OpsCli, db: Database) -> Any:
    """A stored bot (Swift and fallback on, active)."""
    ring = ops.ring()
    return make_bot(db, ring, make_wallet(db, ring))


def rows(db: Database) -> list[Any]:
    """Every row of every table these commands read or write."""
    return [db.fetchall(f"SELECT * FROM {t} ORDER BY 1") for t in TABLES]


def flags(db: Database, bot_id: str) -> dict[str, Any]:
    """The bot's switches as stored."""
    row = db.fetchone("SELECT swift_enabled, swift_fallback_enabled, is_active, paused_reason,"
                      " paused_at FROM trading_bots WHERE id = %s", (bot_id,))
    assert row is not None
    return row


def test_bot_swift_toggles_the_row_and_reports_what_changed(ops: OpsCli, db: Database,
                                                            bot: Any) -> None:
    off = ops.ok("bot", "swift", bot.id, "--off")
    assert off == {"bot_id": bot.id, "swift_enabled": False, "swift_fallback_enabled": True,
                   "changed": True, "was": {"swift_enabled": True,
                                            "swift_fallback_enabled": True}}
    assert flags(db, bot.id)["swift_enabled"] is False
    assert ops.ok("bot", "swift", bot.id, "--off")["changed"] is False
    ops.ok("bot", "swift", bot.id, "--fallback", "OFF")
    assert (flags(db, bot.id)["swift_enabled"], flags(db, bot.id)["swift_fallback_enabled"]) == (
        False, False)
    both = ops.ok("bot", "swift", bot.id, "--on", "--fallback", "on")
    assert (both["swift_enabled"], both["swift_fallback_enabled"]) == (True, True)
    assert (flags(db, bot.id)["swift_enabled"], flags(db, bot.id)["swift_fallback_enabled"]) == (
        True, True)
    human = ops("bot", "swift", bot.id, "--off")
    assert human.code == 0 and human.out.strip() == (
        f"bot {bot.id}: Swift off (was on), legacy fallback on (was on); from its next signal")


def test_pause_and_resume_set_and_clear_the_pause(ops: OpsCli, db: Database, bot: Any) -> None:
    paused = ops.ok("bot", "pause", bot.id, "--reason", "drill")
    assert paused["active"] is False and paused["changed"] is True
    assert paused["paused_reason"] == "operator: drill" and paused["paused_at"]
    stored = flags(db, bot.id)
    assert (stored["is_active"], stored["paused_reason"]) == (False, "operator: drill")
    assert stored["paused_at"] is not None
    again = ops.ok("bot", "pause", bot.id)
    assert again["changed"] is False and flags(db, bot.id)["paused_reason"] == "operator: drill"
    resumed = ops.ok("bot", "resume", bot.id)
    assert resumed["changed"] is True and resumed["was_paused_reason"] == "operator: drill"
    assert flags(db, bot.id) == {"swift_enabled": True, "swift_fallback_enabled": True,
                                 "is_active": True, "paused_reason": None, "paused_at": None}
    assert ops.ok("bot", "resume", bot.id)["changed"] is False
    assert ops.ok("bot", "pause", bot.id)["paused_reason"] == "operator"


BAD = [
    (("bot", "swift", "BOT"), "nothing to change"),
    (("bot", "swift", "BOT", "--on", "--off"), "not both"),
    (("bot", "swift", "BOT", "--fallback", "maybe"), "--fallback must be on or off"),
    (("bot", "swift", "no-such-bot", "--off"), "unknown bot no-such-bot"),
    (("bot", "pause", "no-such-bot"), "unknown bot no-such-bot"),
    (("bot", "pause", "BOT", "--reason", "x" * 600), "--reason"),
    (("bot", "resume", "no-such-bot"), "unknown bot no-such-bot"),
    (("bot", "status", "--wallet", "nowhere"), "unknown wallet nowhere"),
    (("signal", "show", "no-such-signal"), "unknown signal no-such-signal"),
    (("retry", "list", "--status", "stuck"), "--status must be one of"),
    (("retry", "list", "--bot", "no-such-bot"), "unknown bot no-such-bot"),
    (("ious", "list", "--status", "owed"), "--status must be one of"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    ops: OpsCli, db: Database, bot: Any, args: tuple[str, ...], message: str
) -> None:
    args = tuple(bot.id if a == "BOT" else a for a in args)
    before = rows(db)
    result = ops(*args, "--json")
    assert result.code != 0
    (line,) = result.error_lines()
    assert message in line
    assert message in result.json["error"]
    assert rows(db) == before


def test_bot_status_lists_swift_state_pause_and_last_signal(ops: OpsCli, db: Database,
                                                            bot: Any) -> None:
    ring = ops.ring()
    other = make_bot(db, ring, make_wallet(db, ring))
    first = record_signal(db, bot.id, "h1", (), "webhook", "raw", {"action": "buy"}).signal_id
    finish_signal(db, first, "done", {})
    last = record_signal(db, bot.id, "h2", (), "webhook", "raw", {"action": "sell"}).signal_id
    finish_signal(db, last, "skipped", {}, "bot_paused")
    ops.ok("bot", "swift", other.id, "--off")
    ops.ok("bot", "pause", other.id, "--reason", "maintenance")
    listed = ops.ok("bot", "status")
    assert listed["count"] == 2
    views = {view["id"]: view for view in listed["bots"]}
    assert views[bot.id]["last_signal"]["id"] == last
    assert views[bot.id]["last_signal"]["status"] == "skipped"
    assert views[bot.id]["last_signal"]["reason"] == "bot_paused"
    assert (views[bot.id]["swift_enabled"], views[bot.id]["active"]) == (True, True)
    assert views[other.id]["last_signal"] is None
    assert (views[other.id]["swift_enabled"], views[other.id]["swift_fallback_enabled"],
            views[other.id]["active"], views[other.id]["paused_reason"]) == (
        False, True, False, "operator: maintenance")
    only = ops.ok("bot", "status", "--wallet", other.wallet_address)
    assert [view["id"] for view in only["bots"]] == [other.id]
    table = ops("bot", "status")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0] == "2 bot(s)" and lines[1].split()[:3] == ["BOT", "MARKET", "STATE"]
    (other_line,) = [line for line in lines if line.startswith(other.id)]
    assert "paused (operator: maintenance)" in other_line and " off " in other_line


def test_signal_show_tells_the_whole_story_with_swift_events(ops: OpsCli, db: Database,
                                                             bot: Any) -> None:
    ring = ops.ring()
    follower = make_bot(db, ring, make_wallet(db, ring))
    signal_id = record_signal(db, bot.id, "s1", (), "webhook", "raw", {"action": "buy"}).signal_id
    published = publish_bot(db, trading_bot_id=bot.id, creator_wallet_address=bot.wallet_address,
                            profit_share_percent=Decimal(10))
    insert_subscription(db, published_bot_id=published.id, subscriber_bot_id=follower.id,
                        subscriber_wallet_address=follower.wallet_address,
                        capital_usd=Decimal(100))
    (copy,) = copy_to_subscribers(db, signal_id, bot.id, {"slot": 1})
    copy_id = copy.copy_id
    source_trade = open_trade(db, NewTrade(bot.id, signal_id, bot.wallet_address, "SOL-PERP",
                                           "long", 10**9, False, "swift"))
    update_trade(db, source_trade, status="completed", swift_order_id="abcd1234",
                 swift_status="filled")
    log_swift_event(db, source_trade, "abcd1234", "submitted", request={"message": "00ff"})
    log_swift_event(db, source_trade, "abcd1234", "filled", latency_ms=900)
    copy_trade = open_trade(db, NewTrade(follower.id, copy_id, follower.wallet_address,
                                         "SOL-PERP", "long", 10**9, False, "swift"))
    update_trade(db, copy_trade, status="completed", swift_order_id="beef5678",
                 swift_status="fallback", execution_method="legacy",
                 fallback_reason="swift_rejected:unavailable")
    log_swift_event(db, copy_trade, "beef5678", "failed", error_code="unavailable")
    finish_signal(db, signal_id, "done", {})
    story = ops.ok("signal", "show", signal_id)
    assert story["id"] == signal_id and story["status"] == "done"
    (trade,) = story["trades"]
    assert (trade["id"], trade["execution_method"], trade["swift_order_id"]) == (
        source_trade, "swift", "abcd1234")
    (copy,) = story["subscribers"]
    assert copy["id"] == copy_id and copy["trading_bot_id"] == follower.id
    (copied,) = copy["trades"]
    assert (copied["execution_method"], copied["fallback_reason"]) == (
        "legacy", "swift_rejected:unavailable")
    events = story["swift_events"]
    assert [e["event_type"] for e in events["abcd1234"]] == ["submitted", "filled"]
    assert events["beef5678"][0]["error_code"] == "unavailable"
    assert "request_payload" not in events["abcd1234"][0] and "00ff" not in str(story)
    human = ops("signal", "show", signal_id)
    assert human.code == 0
    first, *rest = human.out.splitlines()
    assert first.startswith(f"signal {signal_id} bot {bot.id} (webhook): done; 2 trade(s), 1")
    assert any("fallback swift_rejected:unavailable" in line for line in rest)
    assert any(line.strip() == "failed unavailable" for line in rest)


def test_retry_list_shows_open_jobs_critical_first(ops: OpsCli, db: Database, bot: Any) -> None:
    def job(priority: str, **extra: Any) -> str:
        return enqueue(db, NewJob(bot.id, bot.wallet_address, "SOL-PERP", "long",
                                  Decimal("0.5"), priority == "critical", priority,
                                  5 if priority == "critical" else 3,
                                  payload={"secret": "do-not-print"}, **extra))

    normal = job("normal", last_error="partial fill: 1 of 2")
    critical = job("critical")
    failed = job("normal")
    db.execute("UPDATE trade_retry_queue SET status = 'failed', attempts = 3 WHERE id = %s",
               (failed,))
    listed = ops.ok("retry", "list")
    assert listed["statuses"] == ["pending", "running"]
    assert [j["id"] for j in listed["jobs"]] == [critical, normal]
    first = listed["jobs"][1]
    assert (first["bot_id"], first["market"], first["side"], first["size"], first["priority"],
            first["attempts"], first["max_attempts"], first["cooldown_retries"],
            first["outcome_unknown"], first["last_error"]) == (
        bot.id, "SOL-PERP", "long", "0.5", "normal", 0, 3, 0, False, "partial fill: 1 of 2")
    assert first["next_retry_at"]
    assert [j["id"] for j in ops.ok("retry", "list", "--status", "failed")["jobs"]] == [failed]
    assert ops.ok("retry", "list", "--status", "all")["count"] == 3
    assert ops.ok("retry", "list", "--bot", bot.id)["count"] == 2
    human = ops("retry", "list")
    assert human.code == 0 and human.out.splitlines()[0] == "2 retry job(s) (pending, running)"
    assert "attempts 0/5" in human.out.splitlines()[1]
    assert all("do-not-print" not in run.out for run in ops.runs)


def test_ious_list_shows_unpaid_shares(ops: OpsCli, db: Database, bot: Any) -> None:
    ring = ops.ring()
    follower = make_bot(db, ring, make_wallet(db, ring))
    published = publish_bot(db, trading_bot_id=bot.id, creator_wallet_address=bot.wallet_address,
                            profit_share_percent=Decimal(10))
    shares = []
    for _ in range(2):
        trade = open_trade(db, NewTrade(follower.id, None, follower.wallet_address, "SOL-PERP",
                                        "short", 10**9, True, "legacy"))
        shares.append(create_share(db, NewShare(
            trade, follower.id, published.id, follower.wallet_address, bot.wallet_address,
            Decimal("1.25"), Decimal("12.5"), Decimal(10), 3600))[0])
    db.execute("UPDATE pending_profit_shares SET status = 'paid', paid_tx_signature = 'sig'"
               " WHERE id = %s", (shares[1],))
    listed = ops.ok("ious", "list")
    assert listed["statuses"] == ["pending", "sending"]
    (iou,) = listed["ious"]
    assert (iou["id"], iou["amount"], iou["status"], iou["subscriber_bot_id"],
            iou["creator_wallet_address"]) == (shares[0], "1.25", "pending", follower.id,
                                               bot.wallet_address)
    assert [r["id"] for r in ops.ok("ious", "list", "--status", "paid")["ious"]] == [shares[1]]
    assert ops.ok("ious", "list", "--status", "all")["count"] == 2
    human = ops("ious", "list")
    assert human.code == 0 and human.out.splitlines()[0] == "1 IOU(s) (pending, sending)"
    assert "1.25 USDC" in human.out


def test_no_ops_output_shows_a_stored_secret(ops: OpsCli, db: Database, bot: Any) -> None:
    signal_id = record_signal(db, bot.id, "s", (), "webhook", "raw", {"action": "buy"}).signal_id
    for args in (("bot", "status"), ("bot", "swift", bot.id, "--off"),
                 ("bot", "pause", bot.id), ("bot", "resume", bot.id),
                 ("signal", "show", signal_id), ("retry", "list"), ("ious", "list")):
        ops(*args)
        ops(*args, "--json")
    secrets = db.fetchone("SELECT webhook_secret_hash, policy_hmac FROM trading_bots"
                          " WHERE id = %s", (bot.id,))
    assert secrets is not None and secrets["policy_hmac"]
    envelope = db.fetchone("SELECT * FROM wallets WHERE address = %s", (bot.wallet_address,))
    sealed = [str(v) for k, v in (envelope or {}).items() if "envelope" in k or "encrypted" in k]
    for run in ops.runs:
        assert run.code == 0, (run.args, run.err)
        for value in [secrets["policy_hmac"], *[s for s in sealed if s and s != "None"]]:
            assert value not in run.out and value not in run.err


def test_commands_are_listed_under_bot_and_at_the_top(ops: OpsCli) -> None:
    helped = ops("bot", "--help")
    assert helped.code == 0
    for name in ("swift", "pause", "resume", "status"):
        assert name in helped.out
    for group in ("signal", "retry", "ious"):
        assert ops(group, "--help").code == 0
