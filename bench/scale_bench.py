"""A node's scale-out at venue timing, WORKERS=0/1/2 (run by hand; prints progress lines, then a
header and one markdown table).

    .venv/bin/python bench/scale_bench.py [--quick] [--workers 0,1,2] [--runs N] [--trials N]

Parts (reused from bench/resilience_bench.py, bench/venue_speed_bench.py, tests/):
- one exchange sandbox (`python -m sandbox`, resilience_bench.Lab) at venue_speed_bench's venue
  timing: 400 ms slots, JSON-RPC 40 ms per request and 50 calls/s (HTTP 429 above), Swift 30 ms
  per request, the `v3` fill profile; and one private pgserver PostgreSQL (Lab). Both outlive
  the nodes, so the bots are provisioned once and every node configuration trades the same
  accounts (a node's own sandbox child would lose them at each stop);
- per value of WORKERS, a node: `runtime.py run` (tests.daemon.Daemon: own STATE_DIR and ports,
  READY=1 awaited) with DATABASE_URL/SANDBOX_URL of the lab; every daemon setting its default
  (BOT_LEASE_TTL_S 15, DB_POOL_SIZE 20, Swift 100/s burst 600 per process, ...) but
  WEBHOOK_BOT_RATE_PER_S/WEBHOOK_BOT_BURST (1000, as resilience_bench). Each measure starts once
  every bot is held and fairly spread (live bot_leases) and once the previous alerts are final;
- provisioning through the operator CLI in this process (tests.test_daemon_workers.cli), one
  wallet per bot: a first bot trades on its wallet's main account, whereas a further bot of a
  wallet creates and funds a sub-account on-chain (0.3-0.8 s each at 400 ms slots, against
  ~0.15 s for a wallet), and one wallet per bot makes each bot's orders its agent's at the venue.

Measures, per node (times on this host's wall clock; the client is this process, gevent, one
new connection per alert as TradingView opens, tests/e2e/rawhttp):
1. ack: 200 alerts/s for 5 s (2 s with --quick) round-robin over 100 bots right after the
   node started (no warm-up), each bot's alerts opening and closing one contract alternately;
   open loop (alert i is due at t0 + i/200 and sent then whatever came back), each latency
   taken from its due time to its 202. Then the time from the last due send until every
   committed alert is final; counted apart: alerts answered from the journal (`"queued":
   "journal"`: the database took over 2 s), answered ids never in webhook_signals, and alerts
   final without an order (each alert opens or closes one contract, so each should trade;
   before each measure a bot whose venue position disagrees with its alerts is re-synced).
2. burst: 1,000 bots (100), one alert each, all spawned at once, no warm-up (for 900 of them
   the first alert since the node started); ack from the common start; alert -> the bot's
   first Swift POST as the sandbox logged its arrival (GET /sandbox/swift-posts, matched by
   the bot's agent); bots filled on-chain with no Swift POST are counted apart.
3. fan-out: one published bot, 500 subscribers (100); a warm-up open and close, then --runs
   alerts alternating open/close, each awaited until the source and every copy are final,
   measured as venue_speed_bench does (venue_timing.measure: source POST, first/last
   subscriber POST, last subscriber fill), the Swift bucket refilled between alerts. Medians.
4. failover (workers only): (a) kill -9 of one node worker (node_workers.pid), at once an alert
   to a bot it held (bot_leases), time kill -> that bot's first order at the sandbox (Swift
   POST, else fill); the node restarts the worker on its STATE_DIR, which takes its leases
   back. (b) an extra `run --role worker` with its own STATE_DIR is started and awaited until
   it holds its share, killed -9, one of its bots alerted: kill -> order waits for its leases
   to run out (BOT_LEASE_TTL_S). --trials each, medians.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402
import argparse
import contextlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gevent
import gevent.pool
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resilience_bench import DEFAULTS, Bot, Lab, alert_body, fmt_s, pct, wait_until
from venue_speed_bench import VENUE_TIMING
from venue_timing import (
    AlertTiming,
    StatsPoller,
    child_pids,
    fills_since,
    fmt_ms,
    measure,
    median,
    swift_posts,
)

from storage.database import Database
from storage.signals import SignalWaiter
from tests.daemon import Daemon
from tests.e2e import rawhttp
from tests.test_daemon_workers import cli, holder_pid, holders

ACK_RATE = 200.0
ACK_BOTS = 100
SIZES = {"full": {"ack_s": 5.0, "burst": 1000, "subscribers": 500, "runs": 3, "trials": 3},
         "quick": {"ack_s": 2.0, "burst": 100, "subscribers": 100, "runs": 1, "trials": 1}}
NODE_SETTINGS = {"WEBHOOK_BOT_RATE_PER_S": "1000", "WEBHOOK_BOT_BURST": "1000"}
EXECUTE_WAIT_S = 300.0  # longest wait for a measure's alerts to be final
JOURNAL_WAIT_S = 30.0  # for journaled alerts to be committed (replayed every second)
SPREAD_WAIT_S = 180.0  # longest wait for the bots to be held and spread
ORDER_WAIT_S = 120.0  # longest wait for a failover's order at the venue
SWIFT_RATE_PER_S = float(DEFAULTS["SWIFT_RATE_PER_S"])
SWIFT_BURST = int(DEFAULTS["SWIFT_RATE_BURST"])
JSON = [(b"Content-Type", b"application/json")]


@dataclass
class Fleet:
    """What was provisioned: bots with webhook secrets, and a published bot's followers."""

    bots: list[Bot]
    source: Bot
    subscribers: set[str]  # the subscribers' agents
    seconds: float


@dataclass
class Sent:
    """One alert as the client saw it (monotonic times)."""

    due: float
    answered: float
    status: int  # 0: no HTTP answer
    body: dict[str, Any]

    @property
    def signal_id(self) -> str | None:
        """The id a 202 answered."""
        return self.body.get("signal_id") if self.status == 202 else None

    @property
    def journaled(self) -> bool:
        """Answered from the local journal (the database was slow or unreachable)."""
        return self.body.get("queued") == "journal"


@dataclass
class Executed:
    """What became of a measure's alerts."""

    took: float | None  # from the measure's start or last send until all were final
    final: Counter[str]  # statuses of the alerts' rows
    journaled: int
    missing: int  # ids answered in a 202 that never appeared in webhook_signals
    no_order: int  # final without a trade row: each alert here should trade once
    not_202: Counter[int]

    def __str__(self) -> str:
        parts = [", ".join(f"{n} {status}" for status, n in self.final.most_common())]
        if self.not_202:
            parts.append(f"{sum(self.not_202.values())} not 202 {dict(self.not_202)}")
        if self.journaled:
            parts.append(f"{self.journaled} journaled")
        if self.missing:
            parts.append(f"{self.missing} answered ids never in the database")
        if self.no_order:
            parts.append(f"{self.no_order} without an order")
        return f"{fmt_s(self.took)} ({'; '.join(parts)})"


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


# --- alerts --------------------------------------------------------------------------------


def send(address: tuple[str, int], bot: Bot) -> tuple[int, dict[str, Any]]:
    """The bot's next alert (opens when its alerts so far are even, else closes), on a new
    connection; the status (0: no answer) and the JSON answer."""
    body = json.dumps(alert_body(bot.bot_id, bot.sent)).encode()
    bot.sent += 1
    target = f"/api/webhook/tradingview/{bot.bot_id}?secret={quote(bot.secret)}".encode()
    try:
        answer = rawhttp.request(address, "POST", target, JSON, body)
    except OSError:
        return 0, {}
    try:
        parsed = answer.json()
    except ValueError:
        parsed = {}
    return answer.status, parsed if isinstance(parsed, dict) else {}


def accepted(address: tuple[str, int], bot: Bot) -> str:
    """Send the bot's next alert; the signal id of its 202 (anything else raises)."""
    status, answer = send(address, bot)
    if status != 202:
        raise RuntimeError(f"alert to {bot.bot_id} answered {status}: {answer}")
    return str(answer["signal_id"])


def fire(address: tuple[str, int], bots: list[Bot], due: list[float]) -> list[Sent]:
    """Open loop: bots[i]'s alert leaves at monotonic due[i] in its own greenlet, whether or
    not earlier ones were answered."""
    group = gevent.pool.Group()
    sent: list[Sent] = []

    def one(bot: Bot, at: float) -> None:
        status, answer = send(address, bot)
        sent.append(Sent(at, time.monotonic(), status, answer))

    for bot, at in zip(bots, due, strict=True):
        gevent.sleep(max(0.0, at - time.monotonic()))
        group.spawn(one, bot, at)
    group.join(timeout=rawhttp.TIMEOUT_S * 3)
    return sent


def executed(db: Database, waiter: SignalWaiter, sent: list[Sent], since: float) -> Executed:
    """Wait until every answered alert is final: the journaled ones once the replay committed
    them (given JOURNAL_WAIT_S: an id it never commits, say as a duplicate of a row the slow
    insert did commit, counts as missing); what became of all, `took` from `since` (wall
    time) to the last processed_at."""
    ids = [s.signal_id for s in sent if s.signal_id]
    journaled = [s.signal_id for s in sent if s.signal_id and s.journaled]

    def stored() -> list[str]:
        return [r["id"] for r in db.fetchall(
            "SELECT id FROM webhook_signals WHERE id = ANY(%s)", (ids,))]

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: len(stored()) == len(ids), "journaled alerts committed",
                   JOURNAL_WAIT_S)
    final = False
    with contextlib.suppress(TimeoutError):
        waiter.wait(stored(), EXECUTE_WAIT_S)
        final = True
    rows = db.fetchall(
        "SELECT status, extract(epoch FROM processed_at) AS done_at,"
        " EXISTS (SELECT 1 FROM bot_trades t WHERE t.signal_id = s.id) AS traded"
        " FROM webhook_signals s WHERE id = ANY(%s)", (ids,))
    took = max(float(r["done_at"]) for r in rows) - since if final and rows else None
    return Executed(took, Counter(r["status"] for r in rows), len(journaled),
                    len(ids) - len(rows), sum(1 for r in rows if not r["traded"]),
                    Counter(s.status for s in sent if s.status != 202))


def resync(lab: Lab, bots: list[Bot]) -> list[Bot]:
    """Make each bot's next alert the one that trades against what the venue holds: a close
    while it has a position, else an open (alerts of a bot executed out of their sending
    order leave it otherwise: Executed.no_order); said when any needed it."""
    fixed = 0
    for bot in bots:
        answer = requests.get(f"{lab.sandbox.url}/sandbox/user",
                              params={"authority": bot.authority}, timeout=10)
        answer.raise_for_status()
        holding = any(int(p["base_asset_amount"]) for p in answer.json().get("positions", []))
        if holding != (bot.sent % 2 == 1):
            bot.sent += 1
            fixed += 1
    if fixed:
        print(f"  {fixed} bot(s) held other than their alerts said: next alert flipped",
              flush=True)
    return bots


def latencies(sent: list[Sent], since: float | None = None) -> list[float]:
    """Seconds from each alert's due time (or `since`) to its answer."""
    return [s.answered - (s.due if since is None else since) for s in sent if s.status]


def spread_of(values: list[float], max_too: bool = True) -> str:
    """p50 / p99 (/ max) in readable units."""
    parts = [fmt_s(pct(values, 50)), fmt_s(pct(values, 99))]
    return " / ".join([*parts, fmt_s(max(values, default=None))] if max_too else parts)


# --- 1. ack under load, 2. burst -------------------------------------------------------------


def measure_ack(node: Node, fleet: Fleet, db: Database, waiter: SignalWaiter, lab: Lab,
                seconds: float) -> dict[str, str]:
    """Open-loop alerts at ACK_RATE for `seconds` over ACK_BOTS bots; ack latency from each
    alert's due time; then until all are final."""
    bots = resync(lab, fleet.bots[:ACK_BOTS])
    count = round(ACK_RATE * seconds)
    start = time.monotonic() + 0.1
    due = [start + i / ACK_RATE for i in range(count)]
    sent = fire(node.address, [bots[i % len(bots)] for i in range(count)], due)
    outcome = executed(db, waiter, sent, due[-1] + time.time() - time.monotonic())
    acks = latencies(sent)
    print(f"  ack: {len(sent)} alerts, p50/p99/max {spread_of(acks)}; last send -> final"
          f" {outcome}", flush=True)
    return {"ack": spread_of(acks), "ack_exec": str(outcome)}


def measure_burst(node: Node, fleet: Fleet, db: Database, waiter: SignalWaiter, lab: Lab,
                  n: int) -> dict[str, str]:
    """`n` bots alerted at once: ack from the common start, alert -> each bot's first Swift
    POST at the venue."""
    bots = resync(lab, fleet.bots[:n])
    wall, start = time.time(), time.monotonic()
    sent = fire(node.address, bots, [start] * n)
    outcome = executed(db, waiter, sent, wall)
    first: dict[str, float] = {}
    for post in swift_posts(lab.sandbox.url, wall):
        first.setdefault(post["authority"], post["at"])
    to_post = [first[b.authority] - wall for b in bots if b.authority in first]
    filled = {f["authority"] for f in fills_since(lab.sandbox.url, wall)}
    on_chain = sum(1 for b in bots if b.authority in filled and b.authority not in first)
    posted = f"{len(to_post)}/{n} via Swift, {on_chain} on-chain only"
    acks = latencies(sent, start)
    print(f"  burst: {n} alerts, ack p50/p99/max {spread_of(acks)}; -> Swift POST p50/p99/max"
          f" {spread_of(to_post)} ({posted}); start -> final {outcome}", flush=True)
    return {"burst_ack": spread_of(acks),
            "burst_post": f"{spread_of(to_post, max_too=False)} ({posted})",
            "burst_exec": str(outcome)}


# --- 3. fan-out ------------------------------------------------------------------------------


def measure_fanout(node: Node, fleet: Fleet, db: Database, waiter: SignalWaiter, lab: Lab,
                   runs: int) -> dict[str, str]:
    """A warm-up open and close, then `runs` measured alerts to the published bot."""
    watched = {**worker_pids(node), "sandbox": lab.sandbox.process.pid}
    last_posts = (0.0, 0)  # the previous alert's last POST arrival, and its POSTs
    timings: list[AlertTiming] = []
    resync(lab, [fleet.source])
    for run in range(2 + runs):
        # the Swift budget the previous alert used is paid back at SWIFT_RATE_PER_S from its
        # last POST (venue_speed_bench's rule), so each measured alert has a full bucket
        ready = last_posts[0] + min(last_posts[1], SWIFT_BURST) / SWIFT_RATE_PER_S
        gevent.sleep(max(0.0, ready - time.time()) if run >= 2 else 0.0)
        kind = "open" if fleet.source.sent % 2 == 0 else "close"
        with StatsPoller(lab.sandbox.url, lab.dir, watched) as poller:
            t0 = time.time()
            signal_id = accepted(node.address, fleet.source)
            acked = time.time()
            waiter.wait([signal_id], EXECUTE_WAIT_S)
            copies = [r["id"] for r in db.fetchall(
                "SELECT id FROM webhook_signals WHERE parent_signal_id = %s", (signal_id,))]
            waiter.wait(copies, EXECUTE_WAIT_S)
        posts = swift_posts(lab.sandbox.url, t0)
        ours = [p["at"] for p in posts
                if p["authority"] in fleet.subscribers | {fleet.source.authority}]
        last_posts = (max(ours, default=0.0), len(ours))
        if run < 2:
            continue
        t = measure(kind, t0, acked, fleet.source.authority, fleet.subscribers, posts,
                    fills_since(lab.sandbox.url, t0), poller.samples)
        timings.append(t)
        print(f"  fan-out {kind}: source POST {fmt_ms(t.source_post_ms)}, subs POST first"
              f" {fmt_ms(t.first_sub_post_ms)} last {fmt_ms(t.last_sub_post_ms)} ({t.sub_posts}"
              f" subs), last sub fill {fmt_ms(t.last_sub_fill_ms)}; RPC {t.rpc_all}"
              f" (429s {t.rpc_limited_total}); CPU busy to the last POST: " + ", ".join(
                  f"{k} {v:.0%}" for k, v in t.cpu_busy.items()), flush=True)
    cells = [median(getattr(t, name) for t in timings) for name in
             ("source_post_ms", "first_sub_post_ms", "last_sub_post_ms", "last_sub_fill_ms")]
    return {"fanout": " / ".join(fmt_s(None if c is None else c / 1000) for c in cells)}


# --- 4. failover -----------------------------------------------------------------------------


def order_at(lab: Lab, authority: str, since: float) -> float | None:
    """When the venue first saw an order of `authority` after `since`: its first Swift POST,
    else (sent on-chain) its first fill; None before."""
    posts = [p["at"] for p in swift_posts(lab.sandbox.url, since) if p["authority"] == authority]
    if posts:
        return min(posts)
    answer = requests.get(f"{lab.sandbox.url}/sandbox/fills", params={"authority": authority},
                          timeout=10)
    answer.raise_for_status()
    return min((f["at"] for f in answer.json()["fills"] if f["at"] > since), default=None)


def kill_to_order(node: Node, lab: Lab, waiter: SignalWaiter, bot: Bot,
                  kill: Callable[[], None]) -> float | None:
    """Kill, at once the alert that makes `bot` trade; seconds from the kill to its order at
    the venue (None: none within ORDER_WAIT_S). Returns once the alert is final."""
    resync(lab, [bot])
    killed = time.time()
    kill()
    signal_id = accepted(node.address, bot)
    try:
        at = wait_until(lambda: order_at(lab, bot.authority, killed), "the bot's order",
                        ORDER_WAIT_S)
    except TimeoutError:
        at = None
    waiter.wait([signal_id], EXECUTE_WAIT_S)
    return None if at is None else at - killed


def alertable(fleet: Fleet, bot_ids: list[str]) -> Bot:
    """One of `bot_ids` that takes alerts (a subscriber bot has no webhook secret)."""
    ours = {b.bot_id: b for b in fleet.bots}
    return next(ours[i] for i in sorted(bot_ids) if i in ours)


def measure_failover(node: Node, fleet: Fleet, db: Database, waiter: SignalWaiter, lab: Lab,
                     env: dict[str, str], trials: int) -> dict[str, str]:
    """(a) kill -9 of a node worker, restarted by the node; (b) kill -9 of an extra worker
    that stays dead. Kill -> the alerted bot's order, `trials` each."""
    restarted: list[float | None] = []
    for trial in range(trials):
        held = wait_until(lambda: spread(db, node.workers), "bots spread", SPREAD_WAIT_S)
        holder = sorted(held)[trial % len(held)]
        pid = holder_pid(db, holder)
        node.pids.add(pid)
        restarted.append(kill_to_order(node, lab, waiter, alertable(fleet, held[holder]),
                                       lambda pid=pid: os.kill(pid, signal.SIGKILL)))
        print(f"  kill -9 of node worker pid {pid} -> order {fmt_s(restarted[-1])}", flush=True)
    gone: list[float | None] = []
    for _ in range(trials):
        extra = Daemon(env)
        try:
            started = time.monotonic()
            extra.start("--role", "worker")
            holder = (Path(extra.env["STATE_DIR"]) / "holder_id").read_text().strip()
            held = wait_until(lambda h=holder: (s := spread(db, node.workers + 1)) and h in s
                              and s, "the extra worker holding its share", SPREAD_WAIT_S)
            holding = time.monotonic() - started
            gone.append(kill_to_order(node, lab, waiter, alertable(fleet, held[holder]),
                                      extra.kill))
            print(f"  extra worker: start -> holding {len(held[holder])} bots {fmt_s(holding)};"
                  f" kill -9 -> order {fmt_s(gone[-1])}", flush=True)
            wait_until(lambda: spread(db, node.workers), "its bots taken back", SPREAD_WAIT_S)
        finally:
            extra.stop()
            shutil.rmtree(extra.dir, ignore_errors=True)
    return {"kill_restart": trials_cell(restarted), "kill_gone": trials_cell(gone)}


def trials_cell(values: list[float | None]) -> str:
    """Median (and range) of the trials; missing orders counted."""
    known = [v for v in values if v is not None]
    missing = len(values) - len(known)
    if not known:
        return f"no order ({missing} trials)"
    text = fmt_s(statistics.median(known))
    if len(known) > 1:
        text += f" ({fmt_s(min(known))}-{fmt_s(max(known))})"
    return text + (f", {missing} without an order" if missing else "")


# --- the run ---------------------------------------------------------------------------------


def measure_node(workers: int, env: dict[str, str], fleet: Fleet, db: Database,
                 waiter: SignalWaiter, lab: Lab, sizes: dict[str, float | int]
                 ) -> dict[str, str]:
    """Every measure on one node with `workers` workers; the table's cells."""
    print(f"WORKERS={workers}: starting the node", flush=True)
    with running(env, workers, db) as node:
        cells = {"start": f"{fmt_s(node.start_s)} / {fmt_s(node.spread_s)}"}
        print(f"  READY after {fmt_s(node.start_s)}, bots spread {fmt_s(node.spread_s)} later",
              flush=True)
        steps: list[tuple[tuple[str, ...], Callable[[], dict[str, str]]]] = [
            (("ack", "ack_exec"),
             lambda: measure_ack(node, fleet, db, waiter, lab, float(sizes["ack_s"]))),
            (("burst_ack", "burst_post", "burst_exec"),
             lambda: measure_burst(node, fleet, db, waiter, lab, int(sizes["burst"]))),
            (("fanout",), lambda: measure_fanout(node, fleet, db, waiter, lab,
                                                 int(sizes["runs"])))]
        if workers:
            steps.append((("kill_restart", "kill_gone"), lambda: measure_failover(
                node, fleet, db, waiter, lab, env, int(sizes["trials"]))))
        for keys, step in steps:
            started = time.monotonic()
            try:
                cells.update(step())
            except Exception as exc:  # one failed measure still leaves the others' cells
                cells.update(dict.fromkeys(keys, f"failed: {type(exc).__name__}: {exc}"[:200]))
                print(f"  {keys[0]} failed: {exc!r}", flush=True)
            print(f"  ({keys[0]}: {time.monotonic() - started:.0f} s)", flush=True)
    return cells


def parse() -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="100-bot burst, 100 subscribers, 2 s of ack load, 1 run/trial")
    p.add_argument("--workers", default="1,2,0", help="WORKERS values, in order (default 1,2,0)")
    p.add_argument("--runs", type=int, help="measured fan-out alerts (default 3, quick 1)")
    p.add_argument("--trials", type=int, help="failover trials of each kind (default 3, quick 1)")
    return p.parse_args()


def report(command: str, load: float, sizes: dict[str, float | int], fleet: Fleet,
           workers: list[int], cells: dict[int, dict[str, str]]) -> None:
    """The header and the table."""
    ttl = DEFAULTS["BOT_LEASE_TTL_S"]
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.machine())
    print(f"\n$ {command}\n")
    print(f"- machine: {os.cpu_count()} cores ({cpu}), 1-min load average {load:.2f} at the"
          f" start, {os.getloadavg()[0]:.2f} at the end; the client, the node's processes,"
          " PostgreSQL and the sandbox share them")
    print(f"- venue: one sandbox process, {', '.join(f'{k}={v}' for k, v in VENUE_TIMING.items())};"
          " one pgserver PostgreSQL; both shared by every node")
    print(f"- node: `runtime.py run`, every setting default (BOT_LEASE_TTL_S={ttl}) but"
          f" {', '.join(f'{k}={v}' for k, v in NODE_SETTINGS.items())}")
    print(f"- bots: {len(fleet.bots)} (one wallet each) + 1 published with"
          f" {len(fleet.subscribers)} subscribers, provisioned once in {fmt_s(fleet.seconds)}")
    print(f"- method: open-loop {ACK_RATE:g}/s for {sizes['ack_s']:g} s over {ACK_BOTS} bots, ack"
          " from each alert's due time; burst spawned at once, times from its start; Swift POST"
          " and fill times are the sandbox's; fan-out medians of"
          f" {sizes['runs']} alert(s) after a warm-up pair; failover medians of"
          f" {sizes['trials']} trial(s); p99 is nearest-rank\n")
    rows = [
        ("start", "node start -> READY / -> every bot held and spread"),
        ("ack", f"1. ack p50 / p99 / max, {ACK_RATE:g}/s x {sizes['ack_s']:g} s, {ACK_BOTS} bots"),
        ("ack_exec", "1. last send -> every alert final (answers; final statuses)"),
        ("burst_ack", f"2. burst of {sizes['burst']}: ack p50 / p99 / max"),
        ("burst_post", "2. burst: alert -> Swift POST p50 / p99"),
        ("burst_exec", "2. burst: start -> every alert final"),
        ("fanout", f"3. fan-out to {len(fleet.subscribers)}: alert -> source POST / first sub"
                   " POST / last sub POST / last sub fill"),
        ("kill_restart", "4a. kill -9 node worker (restarted) -> that bot's order"),
        ("kill_gone", f"4b. kill -9 extra worker (stays dead, TTL {ttl} s) -> order")]
    print("| measure | " + " | ".join(f"WORKERS={w}" for w in workers) + " |")
    print("| --- |" + " --- |" * len(workers))
    for key, title in rows:
        print(f"| {title} | " + " | ".join(cells[w].get(key, "-") for w in workers) + " |")


def main() -> None:
    """Provision once, measure each node, print the table; remove everything started."""
    args = parse()
    sizes: dict[str, float | int] = dict(SIZES["quick" if args.quick else "full"])
    for name, value in (("runs", args.runs), ("trials", args.trials)):
        if value is not None:
            sizes[name] = value
    workers = [int(w) for w in args.workers.split(",")]
    for name in DEFAULTS:  # every daemon setting its default unless set here
        os.environ.pop(name, None)
    command = shlex.join([".venv/bin/python", "bench/scale_bench.py", *sys.argv[1:]])
    print(f"$ {command}", flush=True)
    load = os.getloadavg()[0]
    t = VENUE_TIMING
    lab = Lab(argparse.Namespace(
        seed=7, slot_ms=int(t["SANDBOX_SLOT_MS"]), rpc_latency_ms=int(t["SANDBOX_RPC_LATENCY_MS"]),
        rpc_rps_limit=int(t["SANDBOX_RPC_RPS_LIMIT"]),
        swift_latency_ms=int(t["SANDBOX_SWIFT_LATENCY_MS"]),
        fill_profile=t["SANDBOX_FILL_PROFILE"]))
    cells: dict[int, dict[str, str]] = {}
    try:
        url = lab.pg.database()
        env = {**lab.env(url), **NODE_SETTINGS}
        print("provisioning ...", flush=True)
        fleet = provision({**os.environ, **env, "LOG_LEVEL": "warning"},
                          max(ACK_BOTS, int(sizes["burst"])), int(sizes["subscribers"]))
        print(f"  provisioned in {fmt_s(fleet.seconds)}", flush=True)
        db = Database(url, size=2)
        waiter = SignalWaiter(url)
        try:
            for w in workers:
                cells[w] = measure_node(w, env, fleet, db, waiter, lab, sizes)
        finally:
            waiter.close()
            db.close()
    finally:
        lab.close()
        for path in (lab.dir, lab.pg.dir, lab.sandbox.log_path.parent):
            shutil.rmtree(path, ignore_errors=True)
    report(command, load, sizes, fleet, workers, cells)


if __name__ == "__main__":
    main()
