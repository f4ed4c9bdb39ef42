"""A node of worker processes on one database: bots spread over the workers, a worker killed -9
moves its bots to the others within the lease TTL with no order lost or doubled (alerts, and a
copy-trading fan-out whose orders were on the wire), and a worker stopped past its TTL sends
nothing for the bots it lost.

The node (`run`, WORKERS=2) and a third worker (`run --role worker`, as on another machine)
share one database and one sandbox; orders are counted at the sandbox, per agent.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests
from gevent.pool import Pool

import runtime
from sandbox.server import SandboxServer
from storage.bot_shares import WORKERS_CHANNEL
from storage.database import Database
from storage.notify import Listener
from storage.signals import SignalWaiter
from tests.daemon import Daemon, key_file, sandbox_fixture, until
from tests.e2e.stack import environment
from tests.venue_view import counters, orders_executed, position

BOTS = 50
SUBSCRIBERS = 11
HOLD_MS = 2500  # Swift latency that keeps every order on the wire while a worker is killed
LEASE_TTL_S = 6.0
WAIT_S = 120.0
TEMPLATE = "order {side} @ 1 filled on SOLUSD. New strategy position is {position}"


sandbox = sandbox_fixture(seed=21, slot_ms=100)


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """One operator CLI command, in this process (fast), with --json; its JSON object."""
    out = io.StringIO()
    with environment(env), contextlib.redirect_stdout(out):
        code = runtime.main([*args, "--json"])
    assert code == 0, (args, out.getvalue())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def eventually(db: Database, check: Callable[[], Any], what: str) -> Any:
    """Wait until `check` answers something truthy, looking again each time a worker renews
    its leases (they NOTIFY WORKERS_CHANNEL)."""
    listener = Listener(db.dsn, WORKERS_CHANNEL)
    try:
        return listener.wait_until(lambda _cursor: check() or None, WAIT_S, what)
    finally:
        listener.close()


def holders(db: Database) -> dict[str, list[str]]:
    """Live leases: holder -> bot ids."""
    held: dict[str, list[str]] = {}
    for row in db.fetchall("SELECT holder, bot_id FROM bot_leases WHERE expires_at > now()"):
        held.setdefault(row["holder"], []).append(row["bot_id"])
    return held


def spread(db: Database, workers: int, bots: int = BOTS) -> dict[str, list[str]] | None:
    """The leases once every bot is held and each of `workers` holds its fair share."""
    held = holders(db)
    share = math.ceil(bots / workers)
    sizes = sorted(len(held_bots) for held_bots in held.values())
    if len(held) == workers and sum(sizes) == bots and sizes[-1] <= share \
            and sizes[0] >= bots - share * (workers - 1):
        return held
    return None


def orders(sandbox: SandboxServer) -> dict[str, int]:
    """Orders (Swift and on-chain) the venue executed, per agent: a Swift order that expired
    unfilled under load and went on-chain is one order, a second fill is two."""
    seen = counters(sandbox.url)
    return {agent: orders_executed(sandbox.url, agent, seen) for agent in seen}


def alert(node: Daemon, bot: dict[str, Any], position: int) -> str:
    """A TradingView alert to the node's intake; the signal id it answered."""
    body = TEMPLATE.format(side="buy" if position > 0 else "sell", position=position)
    answer = requests.post(f"{node.url}/api/webhook/tradingview/{bot['bot_id']}",
                           params={"secret": bot["secret"]}, data=body.encode(), timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["signal_id"]


def bots_in_metrics(node: Daemon) -> int:
    """The node's worker_bots_held series, summed (one series per live worker)."""
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in node.metrics().splitlines()
                     if line.startswith("worker_bots_held{")))


def holder_pid(db: Database, holder: str) -> int:
    """The process id a live worker registered."""
    row = db.fetchone("SELECT pid FROM node_workers WHERE holder = %s", (holder,))
    assert row is not None
    return row["pid"]


def test_workers_share_the_bots_and_take_over_a_dead_one(database_url: str, tmp_path: Path,
                                                         sandbox: SandboxServer) -> None:
    key = key_file(tmp_path / "server.key")
    env = {"DATABASE_URL": database_url, "SANDBOX_URL": sandbox.url,
           "SERVER_KEYS": f"k1=file:{key}", "ADMIN_TOKEN": "workers" * 5,
           "BOT_LEASE_TTL_S": str(LEASE_TTL_S), "AUCTION_DURATION_SLOTS": "10",
           "HEALTH_INTERVAL_MS": "1000"}
    node = Daemon({**env, "WORKERS": "2"}).start()
    remote = Daemon(env).start("--role", "worker")  # a worker of another machine
    db = Database(database_url, size=2)
    waiter = SignalWaiter(database_url)
    try:
        cli_env = {**os.environ, **node.env}
        bots = []
        for _ in range(BOTS):
            wallet = cli(cli_env, "wallet", "create", "--fund", "1000")
            bot = cli(cli_env, "bot", "create", "--wallet", wallet["wallet"], "--market",
                      "SOL-PERP", "--leverage", "2", "--max-position-usd", "100")
            bots.append({"bot_id": bot["bot_id"], "secret": bot["webhook_secret"],
                         "agent": wallet["agent_public_key"]})
        by_id = {b["bot_id"]: b for b in bots}

        # 50 bots spread over three workers, none held twice
        first = eventually(db, lambda: spread(db, 3), "50 bots spread over 3 workers")
        remote_holder = (Path(remote.env["STATE_DIR"]) / "holder_id").read_text().strip()
        remote_bots = first[remote_holder]

        # alerts to every bot; the remote worker is killed -9 while they run
        pool = Pool(BOTS)
        opened = pool.map(lambda b: alert(node, b, 1), bots[: BOTS // 2])
        remote.kill()
        killed_at = time.monotonic()
        opened += pool.map(lambda b: alert(node, b, 1), bots[BOTS // 2:])
        assert set(waiter.wait(opened, WAIT_S).values()) == {"done"}
        # its bots were taken over by the node's workers within the TTL (plus a renewal)
        moved = holders(db)
        assert remote_holder not in moved and sum(len(b) for b in moved.values()) == BOTS
        assert time.monotonic() - killed_at < WAIT_S
        assert orders(sandbox) == {b["agent"]: 1 for b in bots}  # none lost, none doubled

        # and they trade again: a close to each of the dead worker's bots
        closed = pool.map(lambda bot_id: alert(node, by_id[bot_id], 0), remote_bots)
        assert set(waiter.wait(closed, WAIT_S).values()) == {"done"}

        # a worker stopped past its TTL loses its bots; woken again, it sends nothing for them
        held = eventually(db, lambda: spread(db, 2), "50 bots spread over the 2 node workers")
        stopped, others = sorted(held)
        pid = holder_pid(db, stopped)
        os.kill(pid, signal.SIGSTOP)
        try:
            reopened = pool.map(lambda bot_id: alert(node, by_id[bot_id], -1), held[stopped])
            assert set(waiter.wait(reopened, WAIT_S).values()) == {"done"}
            assert set(holders(db)) == {others}
        finally:
            os.kill(pid, signal.SIGCONT)
        eventually(db, lambda: spread(db, 2), "the woken worker takes its share back")
        expected = {b["agent"]: 1 for b in bots}
        for bot_id in remote_bots:
            expected[by_id[bot_id]["agent"]] += 1
        for bot_id in held[stopped]:  # a flip (long to short) is two orders: close, open
            expected[by_id[bot_id]["agent"]] += 1 if bot_id in remote_bots else 2
        assert orders(sandbox) == expected
        assert "bot lease(s) lost to another process" in node.log()

        # one scrape shows the node: its two workers' bots, and the orders they sent
        eventually(db, lambda: bots_in_metrics(node) == BOTS, "worker_bots_held sums to 50")
        report = requests.get(f"{node.admin_url}/api/admin/swift-metrics", timeout=5,
                              headers={"Authorization": f"Bearer {env['ADMIN_TOKEN']}"}).json()
        assert report["summary"]["totalOrders"] >= BOTS  # executed by workers, not the intake
        assert report["swiftHealthy"] is True

        # the node's workers die with its intake (nothing runs bots unsupervised)
        workers = [psutil.Process(holder_pid(db, holder)) for holder in (stopped, others)]
        node.kill()
        _, alive = psutil.wait_procs(workers, timeout=WAIT_S)
        assert not alive
    finally:
        waiter.close()
        db.close()
        remote.stop()
        node.stop()


def test_a_fanout_loses_and_doubles_nothing_when_a_worker_dies_mid_flight(
        database_url: str, tmp_path: Path, sandbox: SandboxServer) -> None:
    key = key_file(tmp_path / "server.key")
    env = {"DATABASE_URL": database_url, "SANDBOX_URL": sandbox.url,
           "SERVER_KEYS": f"k1=file:{key}", "ADMIN_TOKEN": "workers" * 5,
           "BOT_LEASE_TTL_S": str(LEASE_TTL_S), "AUCTION_DURATION_SLOTS": "60",
           "RETRY_LEASE_S": "4", "RETRY_TICK_MS": "200"}
    node = Daemon({**env, "WORKERS": "2"}).start()
    remote = Daemon(env).start("--role", "worker")
    db = Database(database_url, size=2)
    waiter = SignalWaiter(database_url)
    try:
        cli_env = {**os.environ, **node.env}
        creator = cli(cli_env, "wallet", "create", "--fund", "1000")
        source = cli(cli_env, "bot", "create", "--wallet", creator["wallet"], "--market",
                     "SOL-PERP", "--leverage", "5", "--max-position-usd", "300")
        cli(cli_env, "bot", "publish", source["bot_id"], "--profit-share-percent", "10")
        agents = {source["bot_id"]: creator["agent_public_key"]}
        for _ in range(SUBSCRIBERS):
            wallet = cli(cli_env, "wallet", "create", "--fund", "1000")
            sub = cli(cli_env, "bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                      source["bot_id"], "--capital-usd", "200")
            agents[sub["subscriber_bot_id"]] = wallet["agent_public_key"]
        bots = len(agents)
        held = eventually(db, lambda: spread(db, 3, bots), "the fleet spread over 3 workers")
        remote_holder = (Path(remote.env["STATE_DIR"]) / "holder_id").read_text().strip()

        # every order on the wire (Swift answers held), then the remote worker dies
        requests.post(f"{sandbox.url}/sandbox/faults", json={"swift_latency_ms": HOLD_MS},
                      timeout=5).raise_for_status()
        signal_id = alert(node, {"bot_id": source["bot_id"], "secret": source["webhook_secret"]},
                          1)
        until(sandbox, lambda: pending_everywhere(db, signal_id, bots), "every trade on the wire",
              WAIT_S)
        remote.kill()
        requests.post(f"{sandbox.url}/sandbox/faults", json={"clear": True},
                      timeout=5).raise_for_status()

        # the node's workers take the dead one's bots and settle them: one order per bot
        family = [r["id"] for r in db.fetchall(
            "SELECT id FROM webhook_signals WHERE id = %(id)s OR parent_signal_id = %(id)s",
            {"id": signal_id})]
        assert len(family) == bots
        waiter.wait(family, WAIT_S)
        until(sandbox, lambda: settled(db, agents, sandbox), "every bot long, no job open", WAIT_S)
        assert remote_holder not in holders(db) and held[remote_holder]
        seen = counters(sandbox.url)
        assert {a: orders_executed(sandbox.url, a, seen) for a in agents.values()} == {
            a: 1 for a in agents.values()}
    finally:
        waiter.close()
        db.close()
        remote.stop()
        node.stop()



def pending_everywhere(db: Database, signal_id: str, bots: int) -> bool:
    """Every bot of the fan-out has its trade row written and no outcome yet."""
    row = db.fetchone(
        "SELECT count(*) FILTER (WHERE t.status = 'pending') AS pending FROM bot_trades t"
        " JOIN webhook_signals s ON s.id = t.signal_id"
        " WHERE s.id = %(id)s OR s.parent_signal_id = %(id)s", {"id": signal_id})
    return row is not None and row["pending"] == bots


def settled(db: Database, agents: dict[str, str], sandbox: SandboxServer) -> bool:
    """Every bot holds a long at the venue and no retry job is open."""
    open_jobs = db.fetchone("SELECT count(*) AS n FROM trade_retry_queue WHERE status <> 'done'"
                            " AND status <> 'failed'")
    return open_jobs is not None and open_jobs["n"] == 0 and all(
        position(sandbox.url, agent) > 0 for agent in agents.values())
