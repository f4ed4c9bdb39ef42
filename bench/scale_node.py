"""The fleet a scale bench provisions and the node it measures: a `runtime.py run` with WORKERS."""

# Imported by bench/scale_bench.py once it has put the repository root on sys.path and patched
# gevent.
import contextlib
import json
import math
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from resilience_bench import Bot, wait_until
from venue_timing import child_pids

from storage.database import Database
from tests.daemon import Daemon
from tests.test_daemon_workers import cli, holders

SPREAD_WAIT_S = 180.0  # longest wait for the bots to be held and spread


@dataclass
class Fleet:
    """What was provisioned: bots with webhook secrets, and a published bot's followers."""

    bots: list[Bot]
    source: Bot
    subscribers: set[str]  # the subscribers' agents
    seconds: float


@dataclass
class Node:
    """A running node and how to reach it."""

    daemon: Daemon
    workers: int
    address: tuple[str, int]
    start_s: float  # process start -> READY=1
    spread_s: float  # READY=1 -> every bot held and spread
    pids: set[int] = field(default_factory=set)  # worker processes seen


# --- provisioning --------------------------------------------------------------------------


def provision(env: dict[str, str], n_bots: int, n_subscribers: int) -> Fleet:
    """`n_bots` bots and a published bot with `n_subscribers` followers, one wallet each."""
    started = time.monotonic()

    def wallet(fund: str) -> dict[str, str]:
        made = cli(env, "wallet", "create", "--fund", fund)
        if made.get("faucet_error"):
            raise RuntimeError(f"sandbox faucet failed: {made['faucet_error']}")
        return made

    def bot(fund: str, leverage: str, max_usd: str) -> Bot:
        owner = wallet(fund)
        made = cli(env, "bot", "create", "--wallet", owner["wallet"], "--market", "SOL-PERP",
                   "--leverage", leverage, "--max-position-usd", max_usd)
        return Bot(made["bot_id"], made["webhook_secret"], owner["agent_public_key"])

    bots = []
    for i in range(n_bots):
        bots.append(bot("1000", "2", "100"))
        if (i + 1) % 250 == 0:
            print(f"  {i + 1} bots ({time.monotonic() - started:.0f} s)", flush=True)
    source = bot("2000", "5", "600")  # as venue_speed_bench's source
    cli(env, "bot", "publish", source.bot_id, "--profit-share-percent", "10")
    subscribers = set()
    for _ in range(n_subscribers):
        follower = wallet("1000")
        cli(env, "bot", "subscribe", "--wallet", follower["wallet"], "--to", source.bot_id,
            "--capital-usd", "300")
        subscribers.add(follower["agent_public_key"])
    return Fleet(bots, source, subscribers, time.monotonic() - started)


# --- the node ------------------------------------------------------------------------------


def spread(db: Database, workers: int) -> dict[str, list[str]] | None:
    """Live leases (holder -> bots) once every bot is held by `workers` holders (one process for
    WORKERS=0), none over its fair share; None before."""
    held = holders(db)
    row = db.fetchone("SELECT count(*) AS n FROM trading_bots")
    assert row is not None
    count = max(1, workers)
    sizes = [len(bots) for bots in held.values()]
    if len(held) == count and sum(sizes) == row["n"] and max(sizes) <= math.ceil(row["n"] / count):
        return held
    return None


@contextlib.contextmanager
def running(env: dict[str, str], workers: int, db: Database) -> Iterator[Node]:
    """A node with `workers` workers, its bots spread; stopped and its directory removed after
    (a worker process left behind is killed, and said so)."""
    daemon = Daemon({**env, "WORKERS": str(workers)})
    node: Node | None = None
    try:
        started = time.monotonic()
        daemon.start()
        ready = time.monotonic()
        wait_until(lambda: spread(db, workers), "every bot held and spread", SPREAD_WAIT_S)
        node = Node(daemon, workers, ("127.0.0.1", int(daemon.env["WEBHOOK_PORT"])),
                    ready - started, time.monotonic() - ready)
        yield node
    finally:
        alive = daemon.process is not None and daemon.process.poll() is None
        pids = set(child_pids(daemon.process.pid) if alive else []) | (node.pids if node else set())
        daemon.stop()
        for pid in pids:
            with contextlib.suppress(OSError):
                if b"runtime.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
                    print(f"  worker pid {pid} outlived its node: killed", flush=True)
        print(f"  node log: {log_summary(daemon)}", flush=True)
        shutil.rmtree(daemon.dir, ignore_errors=True)


def log_summary(daemon: Daemon) -> str:
    """Warning and error lines of a node (its workers log to the same file), most frequent
    first, and the last line that is not a log record (a traceback's end, say)."""
    counts: Counter[str] = Counter()
    other = ""
    for line in daemon.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            other = line.strip() or other
            continue
        if isinstance(record, dict) and record.get("level") in ("warning", "error", "critical"):
            counts[f"{record['level']} {record.get('logger')}: {record.get('msg')}"[:160]] += 1
    summary = "; ".join(f"{n} x {msg}" for msg, n in counts.most_common(6)) or "no warning"
    return summary + (f"; last other line: {other[:200]}" if other else "")


def worker_pids(node: Node) -> dict[str, int]:
    """The node's processes (name -> pid) whose CPU the fan-out samples."""
    assert node.daemon.process is not None
    pids = {"intake" if node.workers else "node": node.daemon.process.pid}
    for pid in sorted(child_pids(node.daemon.process.pid)):
        with contextlib.suppress(OSError):
            if b"--role" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids[f"worker{len(pids)}"] = pid
                node.pids.add(pid)
    return pids
