"""Two daemons on one database: the one that holds a bot's lease executes it, the other says so in
one log line and executes nothing for it (alerts it receives run once, in the holder); when the
holder dies, the other takes the bot over once the lease ran out. One daemon per STATE_DIR."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from sandbox.server import SandboxServer
from storage.signals import SignalWaiter
from tests.daemon import ROOT, Daemon, cli_json, key_file, sandbox_fixture
from tests.venue_view import orders_received

LEASE_TTL_S = "6"
WAIT_S = 60.0
HELD_ELSEWHERE = "held by another daemon on this database"


sandbox = sandbox_fixture(seed=9, slot_ms=100)


def alert(daemon: Daemon, bot: dict[str, Any], position: int) -> str:
    """A TradingView alert to `daemon`'s webhook; the signal id it was answered with."""
    side = "buy" if position > 0 else "sell"
    answer = requests.post(
        f"{daemon.url}/api/webhook/tradingview/{bot['bot_id']}", timeout=10,
        params={"secret": bot["webhook_secret"]},
        data=f"order {side} @ 1 filled on SOLUSD. New strategy position is {position}".encode())
    assert answer.status_code == 202, answer.text
    return answer.json()["signal_id"]


def test_one_holder_per_bot_across_two_daemons(database_url: str, tmp_path: Path,
                                               sandbox: SandboxServer) -> None:
    key = key_file(tmp_path / "server.key")
    env = {"DATABASE_URL": database_url, "SANDBOX_URL": sandbox.url,
           "SERVER_KEYS": f"k1=file:{key}", "ADMIN_TOKEN": "lease" * 7,
           "BOT_LEASE_TTL_S": LEASE_TTL_S, "AUCTION_DURATION_SLOTS": "10"}
    first = Daemon(env).start()
    second: Daemon | None = None
    waiter = SignalWaiter(database_url)
    try:
        wallet = cli_json(first, "wallet", "create", "--fund", "1000")
        bot = cli_json(first, "bot", "create", "--wallet", wallet["wallet"], "--market", "SOL-PERP",
                  "--leverage", "2", "--max-position-usd", "100")
        opened = alert(first, bot, 1)
        assert waiter.wait([opened], WAIT_S) == {opened: "done"}

        second = Daemon(env).start()
        assert second.log().count(HELD_ELSEWHERE) == 1  # it says so, once
        # an alert the second daemon accepts runs once, in the holder
        closed = alert(second, bot, 0)
        assert waiter.wait([closed], WAIT_S) == {closed: "done"}
        assert orders_received(sandbox.url, wallet["agent_public_key"]) == 2
        assert closed in first.log() and "swift order" not in second.log()

        # one daemon per state directory
        twin = subprocess.run([sys.executable, str(ROOT / "runtime.py"), "run"],
                              env=second.env, cwd=second.dir, capture_output=True, text=True,
                              timeout=WAIT_S)
        assert twin.returncode == 2
        assert "another daemon runs with STATE_DIR" in twin.stderr

        # the holder dies: its lease runs out and the second daemon takes the bot over
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        first.wait_exit()
        reopened = alert(second, bot, -1)
        assert waiter.wait([reopened], WAIT_S) == {reopened: "done"}
        assert orders_received(sandbox.url, wallet["agent_public_key"]) == 3
        assert "no bot is held by another daemon" in second.log()
        assert second.log().count(HELD_ELSEWHERE) == 1
    finally:
        waiter.close()
        first.stop()
        if second is not None:
            second.stop()
