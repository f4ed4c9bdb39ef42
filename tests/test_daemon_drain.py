"""SIGTERM while alerts stream in: the daemon drains (orders in flight reach an outcome, alerts
meanwhile are still answered 202), stops in order with exit 0 and no actor asking a stopped
supervisor; after a restart every accepted alert has exactly one fill at the venue."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import requests

from sandbox.server import SandboxServer
from storage.signals import SignalWaiter
from tests.daemon import Daemon, cli_json, key_file, sandbox_fixture

BOTS = 4
WAIT_S = 90.0


sandbox = sandbox_fixture(seed=13, slot_ms=100)


class AlertStream:
    """Sends alerts round-robin to the bots (open, close, open, ...) from a thread, as fast as
    they are answered, until the daemon stops answering or LIMIT were sent."""

    LIMIT = 80

    def __init__(self, daemon: Daemon, bots: list[dict[str, Any]]) -> None:
        self._daemon = daemon
        self._bots = bots
        self.answers: list[tuple[float, str, requests.Response]] = []  # (sent, bot id, answer)
        self.twenty_answered = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> AlertStream:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(timeout=WAIT_S)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        for turn in range(self.LIMIT):
            bot = self._bots[turn % len(self._bots)]
            opening = (turn // len(self._bots)) % 2 == 0
            body = {"action": "buy" if opening else "sell", "contracts": "1",
                    "position_size": "1" if opening else "0", "order_id": f"drain-{turn}"}
            sent = time.monotonic()
            try:
                answer = requests.post(
                    f"{self._daemon.url}/api/webhook/tradingview/{bot['bot_id']}",
                    params={"secret": bot["webhook_secret"]}, json=body, timeout=10)
            except requests.ConnectionError:
                return  # the server is gone: the daemon stopped
            self.answers.append((sent, bot["bot_id"], answer))
            if len(self.answers) >= 20:
                self.twenty_answered.set()


def fills(sandbox: SandboxServer, agent: str) -> int:
    """Fills the venue made for this authority (each accepted alert: exactly one)."""
    return len(requests.get(f"{sandbox.url}/sandbox/fills", params={"authority": agent},
                            timeout=5).json()["fills"])


def test_sigterm_under_load_drains_then_every_accepted_alert_trades_once(
        database_url: str, tmp_path: Path, sandbox: SandboxServer) -> None:
    key = key_file(tmp_path / "server.key")
    env = {"DATABASE_URL": database_url, "SANDBOX_URL": sandbox.url,
           "SERVER_KEYS": f"k1=file:{key}", "ADMIN_TOKEN": "drain" * 7,
           "AUCTION_DURATION_SLOTS": "10", "DRAIN_TIMEOUT_S": "20",
           "WEBHOOK_BOT_RATE_PER_S": "1000", "WEBHOOK_BOT_BURST": "1000"}
    first = Daemon(env).start()
    second: Daemon | None = None
    waiter = SignalWaiter(database_url)
    try:
        bots, agents = [], {}
        for _ in range(BOTS):
            wallet = cli_json(first, "wallet", "create", "--fund", "1000")
            bot = cli_json(first, "bot", "create", "--wallet", wallet["wallet"], "--market",
                      "SOL-PERP", "--leverage", "2", "--max-position-usd", "100")
            bots.append(bot)
            agents[bot["bot_id"]] = wallet["agent_public_key"]
        # one bot's Swift orders find no maker: each waits out its auction, then goes on-chain,
        # so the drain has orders in flight to wait for
        slow = agents[bots[0]["bot_id"]]
        requests.post(f"{sandbox.url}/sandbox/faults", timeout=5,
                      json={"swift_makers_paused_for": slow}).raise_for_status()
        stream = AlertStream(first, bots).start()
        assert stream.twenty_answered.wait(WAIT_S)
        assert first.process is not None
        terminated_at = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        assert first.wait_exit() == 0
        stream.join()
        requests.post(f"{sandbox.url}/sandbox/faults", timeout=5,
                      json={"clear": True}).raise_for_status()

        statuses = [answer.status_code for _sent, _bot, answer in stream.answers]
        assert set(statuses) == {202}, statuses
        during_drain = [a for sent, _bot, a in stream.answers if sent > terminated_at]
        assert during_drain  # alerts kept being accepted while orders in flight finished
        log = first.log()
        assert "drained in" in log
        for symptom in ("ActorDeadError", "no_answer", "Traceback"):
            assert symptom not in log, symptom

        second = Daemon({**env, "STATE_DIR": first.env["STATE_DIR"]}).start()
        accepted = [a.json()["signal_id"] for _sent, _bot, a in stream.answers]
        final = waiter.wait(accepted, WAIT_S)
        assert set(final.values()) == {"done"}, final
        for bot in bots:
            sent_to_bot = sum(1 for _s, bot_id, _a in stream.answers if bot_id == bot["bot_id"])
            assert fills(sandbox, agents[bot["bot_id"]]) == sent_to_bot
    finally:
        waiter.close()
        first.stop()
        if second is not None:
            second.stop()
