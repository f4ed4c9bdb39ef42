"""Benchmark of the execution paths (run by hand; prints a table).

    .venv/bin/python bench/fanout_bench.py [--subscribers 1,10,100,500] [--acks 50]

A throw-away daemon is assembled as `quantumvault demo` does (embedded PostgreSQL, the sandbox
as a child process with 100 ms slots, the whole supervision tree). It measures:
- webhook acknowledgement latency (HTTP round trip of an accepted alert), median and p95;
- for a published bot with N subscribers: alert -> first Swift POST (the source's own order),
  and routing start -> last subscriber's Swift POST, i.e. the fan-out itself;
- the same fan-out done the seed plan's way (batches of 5, each awaited in full, 100 ms pause
  between batches) as a baseline, and the ratio.
POST times are the `submitted` events of swift_order_logs (written right before each POST).
The Swift rate budget is raised for the run so that it measures dispatch, not the budget.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402
import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import runtime
from actors.fanout import FanoutCoordinator, _CopyDone
from actors.services import Services
from config import load_settings
from demo.tour import TEMPLATE, Tour, demo_environment
from observability.logs import setup_logging
from storage.signals import SignalWaiter
from supervision import ChildSpec

BATCH = 5
PAUSE_S = 0.1


class BatchFanout(FanoutCoordinator):
    """The seed plan's routing: batches of 5, each awaited in full, 100 ms between batches."""

    def _pump(self) -> None:
        if self._in_flight or not self._queue:
            return
        for _ in range(min(BATCH, len(self._queue))):
            bot_id, copy_id = self._queue.popleft()
            self._in_flight += 1
            self.run_in_background(lambda b=bot_id, c=copy_id: self._run_copy(b, c),
                                   then=lambda o, b=bot_id, c=copy_id: _CopyDone(b, c, o))

    def _copy_done(self, done: _CopyDone) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self.send_later(PAUSE_S, _Resume())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Resume):
            return self._pump()
        return super().on_receive(message)


class _Resume:
    pass


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fanout_times(services: Services, signal_id: str) -> tuple[float, float]:
    """(alert -> first POST, routing start -> last subscriber POST) in ms; routing starts when
    the subscriber copies are inserted."""
    row = services.db.fetchone(
        "WITH posts AS (SELECT s.parent_signal_id IS NOT NULL AS copy, s.received_at AS made,"
        "  l.created_at AS posted FROM webhook_signals s"
        "  JOIN bot_trades t ON t.signal_id = s.id"
        "  JOIN swift_order_logs l ON l.trade_id = t.id AND l.event_type = 'submitted'"
        "  WHERE s.id = %(id)s OR s.parent_signal_id = %(id)s)"
        " SELECT extract(epoch FROM min(posted) - (SELECT received_at FROM webhook_signals"
        "   WHERE id = %(id)s)::timestamp) * 1000 AS first,"
        " extract(epoch FROM max(posted) FILTER (WHERE copy)"
        "   - min(made::timestamp) FILTER (WHERE copy)) * 1000 AS last FROM posts",
        {"id": signal_id})
    assert row is not None
    return float(row["first"]), float(row["last"] or 0.0)


def run(subscriber_counts: list[int], acks: int, batch_baseline: bool) -> list[dict]:
    """Assemble a daemon, provision, fire, measure."""
    env = demo_environment(dict(os.environ)) | {
        "SANDBOX_SLOT_MS": "100", "AUCTION_DURATION_SLOTS": "10", "SWIFT_RATE_PER_S": "10000",
        "SWIFT_RATE_BURST": "10000", "LOG_LEVEL": "error", "DB_POOL_SIZE": "60"}
    os.environ.update(env)
    settings = load_settings(env)
    setup_logging(settings["LOG_LEVEL"])
    rows = []
    original = runtime.root_kwargs

    def with_batches(services: Services) -> dict[str, Any]:
        kwargs = original(services)
        children = [ChildSpec("fanout", BatchFanout, kwargs=c.kwargs) if c.name == "fanout"
                    else c for c in kwargs["children"]]
        return {**kwargs, "children": children}

    if batch_baseline:
        runtime.root_kwargs = with_batches
    with runtime.assembled(settings, env) as services:
        root = runtime.start_tree(services, lambda _e: None)
        assert root is not None
        tour = Tour(services, runtime.main)
        waiter = SignalWaiter(services.db.dsn)
        try:
            if acks:
                latencies, signal_ids = ack_latencies(tour, acks)
                waiter.wait(signal_ids, 600)  # let those executions end before measuring more
                rows.append({"acks": latencies})
            for n in subscriber_counts:
                source, _ = tour.provision(n)
                signal_id = fire(tour, source, "buy", 1, 1)
                waiter.wait([signal_id], 600)
                copies = [r["id"] for r in services.db.fetchall(
                    "SELECT id FROM webhook_signals WHERE parent_signal_id = %s", (signal_id,))]
                waiter.wait(copies, 1200)
                first, last = fanout_times(services, signal_id)
                rows.append({"n": n, "first_ms": first, "last_ms": last})
        finally:
            waiter.close()
            runtime.stop_tree(root)
    runtime.root_kwargs = original
    return rows


def fire(tour: Tour, source: dict[str, str], action: str, contracts: int, position: int) -> str:
    """One JSON alert with a unique time."""
    body = TEMPLATE.format(action=action, contracts=contracts, position=position,
                           time=f"{time.time():.6f}")
    return tour.alert(source, body)


def ack_latencies(tour: Tour, count: int) -> tuple[dict[str, float], list[str]]:
    """Round trips of `count` accepted alerts, spread over 10 bots that trade meanwhile."""
    bots = [tour.provision(0)[0] for _ in range(min(count, 10))]
    samples, signal_ids = [], []
    for i in range(count):
        bot = bots[i % len(bots)]
        body = TEMPLATE.format(action="buy", contracts=1, position=1, time=f"ack-{i}")
        started = time.perf_counter()
        answer = requests.post(f"{tour.url}/api/webhook/tradingview/{bot['bot_id']}",
                               params={"secret": bot["secret"]}, data=body.encode(),
                               headers={"Content-Type": "application/json"}, timeout=10)
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 202, answer.text
        signal_ids.append(answer.json()["signal_id"])
    return {"p50": statistics.median(samples), "p95": pct(samples, 0.95)}, signal_ids


def main() -> None:
    """Run ours, then the baseline, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,10,100,500")
    parser.add_argument("--acks", type=int, default=50)
    args = parser.parse_args()
    counts = [int(n) for n in args.subscribers.split(",")]
    ours = run(counts, args.acks, batch_baseline=False)
    baseline = run(counts, 0, batch_baseline=True)
    acks = ours[0]["acks"]
    print(f"webhook acknowledgement: p50 {acks['p50']:.1f} ms, p95 {acks['p95']:.1f} ms "
          f"({args.acks} alerts)\n")
    print("subscribers | alert -> first Swift POST (ms) | fan-out: routing -> last POST (ms)"
          " | seed plan's batches (ms) | ratio")
    print("--- | --- | --- | --- | ---")
    for mine, base in zip(ours[1:], baseline, strict=True):
        ratio = base["last_ms"] / mine["last_ms"] if mine["last_ms"] else float("nan")
        print(f"{mine['n']} | {mine['first_ms']:.0f} | {mine['last_ms']:.0f} | "
              f"{base['last_ms']:.0f} | {ratio:.1f}x")


if __name__ == "__main__":
    main()
