"""Paused bots' closes and the venue's state, on a live tree.

Pauses: a bot the system paused (retries exhausted, an open it cannot afford) still closes its
own position reduce-only, subscriber copies included, and opens nothing; an operator's pause and
an emergency stop still stop everything; `bot status` says who paused and why.
Venue state: Swift or RPC unreachable is a warning at the health monitor's next probe and
/readyz's reason, while /readyz stays 200 (alerts are stored durably); both clear when the venue
answers.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import gevent.event
import pytest
import requests

import runtime
from storage.bot_controls import pause_bot
from tests.e2e.stack import Stack, environment

OPEN_LONG = "order buy @ 2 filled on SOLUSD. New strategy position is 2"
INCREASE = "order buy @ 1 filled on SOLUSD. New strategy position is 3"
FLIP_SHORT = "order sell @ 4 filled on SOLUSD. New strategy position is -1"
CLOSE_LONG = "order sell @ 2 filled on SOLUSD. New strategy position is 0"
RETRIES_EXHAUSTED = "retry gave up after 5 attempts: not_filled"


def copy_of(stack: Stack, signal_id: str, bot_id: str) -> str:
    row = stack.db.fetchone("SELECT id FROM webhook_signals WHERE parent_signal_id = %s"
                            " AND trading_bot_id = %s", (signal_id, bot_id))
    assert row is not None, "no copy was made for the subscriber"
    return row["id"]


def signal_row(stack: Stack, signal_id: str) -> dict:
    row = stack.db.fetchone("SELECT status, status_reason FROM webhook_signals WHERE id = %s",
                            (signal_id,))
    assert row is not None
    return row


def fire(stack: Stack, bot: dict, text: str) -> str:
    answer = stack.alert(bot, text)
    assert answer.status_code == 202, answer.text
    return answer.json()["signal_id"]


def cli_text(stack: Stack, *args: str) -> str:
    """A CLI command's human output."""
    out = io.StringIO()
    with environment(stack.env), contextlib.redirect_stdout(out):
        code = runtime.main(list(args))
    assert code == 0, out.getvalue()
    return out.getvalue()


def states(stack: Stack) -> dict[str, dict]:
    return {view["id"]: view for view in stack.cli("bot", "status")["bots"]}


def test_a_bot_the_system_paused_still_closes_and_opens_nothing(stack: Stack) -> None:
    source, (follower,) = stack.published_with_subscribers(1)
    opened = fire(stack, source, OPEN_LONG)
    assert stack.wait(opened) == {opened: "done"}
    opened_copy = copy_of(stack, opened, follower["bot_id"])
    assert stack.wait(opened_copy) == {opened_copy: "done"}
    held = {b["bot_id"]: stack.position(b["agent"]) for b in (source, follower)}
    assert all(base > 0 for base in held.values())

    for bot in (source, follower):  # what BotContext.pause does when a close's retries run out
        assert pause_bot(stack.db, bot["bot_id"], RETRIES_EXHAUSTED, paused_by="system")
    listed = states(stack)
    for bot in (source, follower):
        view = listed[bot["bot_id"]]
        assert (view["active"], view["paused_by"], view["paused_reason"]) == (
            False, "system", RETRIES_EXHAUSTED)
    table = cli_text(stack, "bot", "status")
    assert f"paused by the system, closes still run ({RETRIES_EXHAUSTED})" in table

    # an increase is an opening order: skipped, for the source and for its copy
    sent = {b["bot_id"]: stack.orders_reaching_sandbox(b["agent"]) for b in (source, follower)}
    grown = fire(stack, source, INCREASE)
    assert stack.wait(grown) == {grown: "skipped"}
    grown_copy = copy_of(stack, grown, follower["bot_id"])
    assert stack.wait(grown_copy) == {grown_copy: "skipped"}
    for signal_id in (grown, grown_copy):
        assert signal_row(stack, signal_id) == {"status": "skipped", "status_reason": "bot_paused"}
        assert stack.trades(signal_id) == []
    for bot in (source, follower):
        assert stack.orders_reaching_sandbox(bot["agent"]) == sent[bot["bot_id"]]
        assert stack.position(bot["agent"]) == held[bot["bot_id"]]

    # a flip: its reduce-only close runs, its open does not
    flipped = fire(stack, source, FLIP_SHORT)
    assert stack.wait(flipped) == {flipped: "done"}
    flipped_copy = copy_of(stack, flipped, follower["bot_id"])
    assert stack.wait(flipped_copy) == {flipped_copy: "done"}
    for signal_id, bot in ((flipped, source), (flipped_copy, follower)):
        (close,) = stack.trades(signal_id)
        assert close["reduce_only"] and close["side"] == "short"
        assert close["status"] == "completed"
        assert stack.position(bot["agent"]) == 0
    listed = states(stack)
    assert all(listed[b["bot_id"]]["paused_by"] == "system" for b in (source, follower))

    # resumed, the bot trades as before
    assert stack.cli("bot", "resume", source["bot_id"])["changed"] is True
    assert states(stack)[source["bot_id"]]["paused_by"] is None
    again = fire(stack, source, "order buy @ 1 filled on SOLUSD. New strategy position is 1")
    assert stack.wait(again) == {again: "done"}
    assert stack.position(source["agent"]) > 0


def test_an_operator_pause_and_an_emergency_stop_still_stop_the_close(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    opened = fire(stack, bot, OPEN_LONG)
    assert stack.wait(opened) == {opened: "done"}
    held = stack.position(bot["agent"])
    assert held > 0
    assert pause_bot(stack.db, bot["bot_id"], "insufficient funds", paused_by="system")

    # a wallet stop refuses the close of a system-paused bot at the trade guard
    stack.cli("estop", "set", "--wallet", bot["wallet"])
    sent = stack.orders_reaching_sandbox(bot["agent"])
    stopped = fire(stack, bot, CLOSE_LONG)
    assert stack.wait(stopped)[stopped] in ("failed", "partial")
    assert stack.orders_reaching_sandbox(bot["agent"]) == sent
    assert stack.position(bot["agent"]) == held
    stack.cli("estop", "clear", "--wallet", bot["wallet"])

    # the operator's pause takes over the system's: now the close is skipped too
    paused = stack.cli("bot", "pause", bot["bot_id"], "--reason", "hands off")
    assert paused["changed"] is True and paused["paused_by"] == "operator"
    view = states(stack)[bot["bot_id"]]
    assert (view["paused_by"], view["paused_reason"]) == ("operator", "operator: hands off")
    assert stack.cli("bot", "pause", bot["bot_id"])["changed"] is False
    # ... and a later system pause does not soften it
    assert pause_bot(stack.db, bot["bot_id"], RETRIES_EXHAUSTED, paused_by="system") is None
    skipped = fire(stack, bot, "order sell @ 3 filled on SOLUSD. New strategy position is 0")
    assert stack.wait(skipped) == {skipped: "skipped"}
    assert signal_row(stack, skipped)["status_reason"] == "bot_paused"
    assert stack.orders_reaching_sandbox(bot["agent"]) == sent
    assert stack.position(bot["agent"]) == held


# --- venue state -----------------------------------------------------------------------------


class LogEvents(logging.Handler):
    """Sets an event per expected message fragment when a record containing it is logged."""

    def __init__(self, *fragments: str) -> None:
        super().__init__(logging.INFO)
        self.events = {fragment: gevent.event.Event() for fragment in fragments}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for fragment, event in self.events.items():
            if fragment in message:
                event.set()

    def wait(self, fragment: str, timeout_s: float = 30.0) -> None:
        assert self.events[fragment].wait(timeout_s), f"no log line with {fragment!r}"


@contextlib.contextmanager
def log_events(logger: str, *fragments: str) -> Iterator[LogEvents]:
    """LogEvents for `fragments`, listening to the named logger for the block."""
    handler = LogEvents(*fragments)
    logging.getLogger(logger).addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger(logger).removeHandler(handler)


@pytest.fixture
def health_log() -> Iterator[LogEvents]:
    with log_events("actors.health_monitor", "dependency swift unreachable",
                    "dependency rpc unreachable", "dependency swift answers again",
                    "dependency rpc answers again") as handler:
        yield handler


def test_swift_and_rpc_unreachable_are_warnings_and_readyz_reasons(
        stack: Stack, health_log: LogEvents) -> None:
    assert requests.get(stack.url + "/readyz", timeout=5).json() == {"ready": True}
    bot = stack.new_bot()
    stack.faults(rpc_primary_down=True, rpc_backup_down=True, health_412=True)
    health_log.wait("dependency swift unreachable")
    health_log.wait("dependency rpc unreachable")
    ready = requests.get(stack.url + "/readyz", timeout=5)
    assert ready.status_code == 200, ready.text  # intake stays up: alerts are durable
    body = ready.json()
    assert body["ready"] is True
    assert "Swift unreachable: /health: 412" in body["reason"]
    assert "RPC unreachable: getSlot failed" in body["reason"]
    assert stack.sandbox.url not in body["reason"]  # an alert is still accepted and stored:
    assert stack.alert(bot, OPEN_LONG).status_code == 202

    stack.faults()
    health_log.wait("dependency swift answers again")
    health_log.wait("dependency rpc answers again")
    assert requests.get(stack.url + "/readyz", timeout=5).json() == {"ready": True}
