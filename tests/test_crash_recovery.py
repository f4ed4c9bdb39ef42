"""kill -9 of the daemon in the middle of a fan-out that started while the source's own order was
still in its auction, then a restart: every subscriber ends with exactly one order at the venue
(counted by the sandbox), none lost, none sent twice."""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.server import SandboxServer
from storage.notify import Listener
from storage.retry_queue import SETTLED_CHANNEL
from storage.signals import FINISHED_CHANNEL
from tests.daemon import Daemon

SUBSCRIBERS = 6
WAIT_S = 120.0


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, seed=5, slot_ms=200)
    server.start()
    yield server
    server.stop()


def cli(daemon: Daemon, *args: str) -> dict[str, Any]:
    result = daemon.cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def orders_at_venue(sandbox: SandboxServer, agent: str) -> int:
    counters = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()["by_authority"]
    mine = counters.get(agent, {})
    return mine.get("swift_orders_received", 0) + mine.get("transactions_received", 0)


def test_kill_9_during_fanout_leaves_every_subscriber_with_exactly_one_order(
        database_url: str, tmp_path: Path, sandbox: SandboxServer) -> None:
    key = tmp_path / "server.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    env = {"DATABASE_URL": database_url, "SANDBOX_URL": sandbox.url,
           "SERVER_KEYS": f"k1=file:{key}", "ADMIN_TOKEN": "crash-admin",
           "SWIFT_MAX_IN_FLIGHT": "2", "AUCTION_DURATION_SLOTS": "10", "RETRY_LEASE_S": "6",
           "RETRY_TICK_MS": "200"}
    first = Daemon(env).start()
    second: Daemon | None = None
    listener = Listener(database_url, FINISHED_CHANNEL, SETTLED_CHANNEL)
    try:
        creator = cli(first, "wallet", "create")
        source = cli(first, "bot", "create", "--wallet", creator["wallet"], "--market",
                     "SOL-PERP", "--leverage", "5", "--max-position-usd", "300")
        cli(first, "bot", "publish", source["bot_id"], "--profit-share-percent", "10")
        agents = []
        for _ in range(SUBSCRIBERS):
            wallet = cli(first, "wallet", "create")
            cli(first, "bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                source["bot_id"], "--capital-usd", "200")
            agents.append(wallet["agent_public_key"])
        # the source's own auction runs its course meanwhile: the fan-out does not wait for it
        requests.post(f"{sandbox.url}/sandbox/faults", timeout=5,
                      json={"swift_makers_paused_for": creator["agent_public_key"]})
        answer = requests.post(
            f"{first.url}/api/webhook/tradingview/{source['bot_id']}", timeout=10,
            params={"secret": source["webhook_secret"]},
            data=b"order buy @ 1 filled on SOLUSD. New strategy position is 1")
        signal_id = answer.json()["signal_id"]

        def copies_finished(cur: Any) -> int | None:
            cur.execute("SELECT count(*) AS n FROM webhook_signals WHERE parent_signal_id = %s"
                        " AND status NOT IN ('accepted', 'processing')", (signal_id,))
            n = cur.fetchone()["n"]
            return n if n >= 1 else None

        done_before_kill = listener.wait_until(copies_finished, WAIT_S, "a first copy done")
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)  # mid fan-out: 2 in flight, more queued
        first.wait_exit()
        assert done_before_kill < SUBSCRIBERS

        second = Daemon({**env, "STATE_DIR": first.env["STATE_DIR"]}).start()

        def settled(cur: Any) -> bool | None:
            cur.execute("SELECT count(*) AS n FROM webhook_signals WHERE (id = %(id)s OR"
                        " parent_signal_id = %(id)s) AND status IN ('accepted', 'processing')",
                        {"id": signal_id})
            open_signals = cur.fetchone()["n"]
            cur.execute("SELECT count(*) AS n FROM trade_retry_queue WHERE status IN"
                        " ('pending', 'running')")
            open_jobs = cur.fetchone()["n"]
            cur.execute("SELECT count(*) AS n FROM webhook_signals WHERE parent_signal_id = %s",
                        (signal_id,))
            copies = cur.fetchone()["n"]
            done = open_signals == 0 and open_jobs == 0 and copies == SUBSCRIBERS
            return True if done else None

        listener.wait_until(settled, WAIT_S, "every copy and every reconciliation settled")
        assert [orders_at_venue(sandbox, agent) for agent in agents] == [1] * SUBSCRIBERS
        for agent in agents:
            user = requests.get(f"{sandbox.url}/sandbox/user", params={"authority": agent},
                                timeout=5).json()
            assert [p["base_asset_amount"] > 0 for p in user["positions"]] == [True]
    finally:
        listener.close()
        first.stop()
        if second is not None:
            second.stop()
