"""The four scale measures (ack, burst, fan-out, failover) on one node, and their table cells."""

# Imported by bench/scale_bench.py once it has put the repository root on sys.path and patched
# gevent.
import os
import shutil
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import gevent
import requests
from resilience_bench import DEFAULTS, Bot, Lab, fmt_s, wait_until
from scale_load import EXECUTE_WAIT_S, accepted, executed, fire, latencies, resync, spread_of
from scale_node import SPREAD_WAIT_S, Fleet, Node, running, spread, worker_pids
from venue_timing import (
    AlertTiming,
    StatsPoller,
    fills_since,
    fmt_ms,
    measure,
    median,
    swift_posts,
)

from storage.database import Database
from storage.signals import SignalWaiter
from tests.daemon import Daemon
from tests.test_daemon_workers import holder_pid

ACK_RATE = 200.0
ACK_BOTS = 100
ORDER_WAIT_S = 120.0  # longest wait for a failover's order at the venue
SWIFT_RATE_PER_S = float(DEFAULTS["SWIFT_RATE_PER_S"])
SWIFT_BURST = int(DEFAULTS["SWIFT_RATE_BURST"])


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
