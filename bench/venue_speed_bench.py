"""Copy-trading fan-out at venue timing (run by hand; prints per-run lines and a markdown table).

    .venv/bin/python bench/venue_speed_bench.py [--subscribers 1,10,100,500] [--runs 5]
        [--baseline-runs N] [--no-baseline]

A throw-away daemon is assembled as `quantumvault demo` does (demo/tour.py: embedded
PostgreSQL, the sandbox as its child process, the whole supervision tree, provisioning through
the operator CLI). The child sandbox runs at venue timing: 400 ms slots, JSON-RPC 40 ms per
request and limited to 50 calls/s (HTTP 429 above), Swift 30 ms per request, and the `v3` fill
profile (85 % of orders filled 1-2 slots after their signed slot, 10 % later
in the auction, 5 % never). Every other daemon setting is its default (inherited daemon settings
are dropped from the environment): Swift budget 100/s with a burst of 600, 256 POSTs in flight,
the venue profile's 10-slot auction, DB_POOL_SIZE 20. The RPC limit is on from the start: the
sandbox faucet used to provision is not a JSON-RPC route, so provisioning is not slowed by it.

Per subscriber count N: a fresh published source bot and N subscribers (uniform: 1000 USDC,
300 USD capital each), one warm-up alert pair (open, close: every bot actor is started and every
account has been read once), then `--runs` measured alerts alternating open long / close (each
a fresh alert with a unique `timenow`), each awaited until the source and every copy are final
(PostgreSQL NOTIFY, storage.signals.SignalWaiter). Then the same number of alerts routed the
original design's way (the baseline, below). Medians over the runs.

What is measured, all from wall-clock `time.time()` on this machine:
- t0, "the alert's arrival": just before the webhook POST leaves this client (same host);
  `ack` is when its 202 came back;
- Swift POSTs as the venue saw them (GET /sandbox/swift-posts, `at` = arrival at the sandbox,
  before its injected latency), mapped to bots by the agent public keys the CLI returned:
  the source's first POST, and per subscriber its first POST; "first/last sub POST" are the
  earliest / latest of those;
- fills from the sandbox fill log (`at`, `authority`): "last sub fill" = the latest fill of any
  subscriber after t0 (Swift maker fills and on-chain placeAndTake fills of the legacy fallback
  alike; a `never` draw dies with its auction and is filled on-chain, so this is dominated by
  the ~5 % of those);
- RPC calls: the sandbox's `rpc_calls` (every JSON-RPC call the daemon made, for any reason,
  background reads included; batches count each call), sampled every 20 ms by a child process
  (bench/venue_timing.py). The first sample is read before t0. "before first sub POST" = the
  difference to the last sample whose answer came back before the first subscriber POST
  arrived (calls made in the <= 20 ms after that sample are not counted); "total" = to the
  first sample sent after the last subscriber fill. 429 answers are counted apart.
- daemon CPU per order: the daemon process's CPU time (utime + stime, read by the same poller
  with each sample) from the alert to the last subscriber POST, and to every copy final,
  divided by the alert's orders (source + copies): the cost of the trade path, less sensitive
  than wall times to what else the machine runs.
Between measured alerts the benchmark lets the Swift gateway's token bucket refill (it waits
until the previous alert's POSTs would have been paid back at SWIFT_RATE_PER_S, from the last
POST's arrival), so each alert starts with the budget an alert minutes after the last one has.

Baseline, "batches of 5 orders with 100 ms pauses" (the original design's fan-out): the fan-out
actor is replaced by a subclass (bench/seed_plan_baseline.py) that, for the baseline alerts
only, wakes 5 subscriber bots, waits until those 5 copies are final, sleeps 100 ms, then the
next 5, in a background greenlet. It keeps the actor's account prefetch; only the routing
differs. While the baseline runs, the intake listener's 30 s backlog sweep is off
(SeedPlanIntake): it wakes every bot with accepted signals and would release the copies the
batches hold back.

That the fan-out does not wait for the source's own auction is shown by an end-to-end test
instead (tests/e2e/test_venue_speed.py pauses the makers for the source's authority only, with
the sandbox's `swift_makers_paused_for`, and checks every subscriber filled first); here the
source's own fill time is printed next to the subscribers' POSTs.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402
import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seed_plan_baseline import SeedPlanFanout, seed_plan_changes
from venue_timing import (
    AlertTiming,
    Sample,
    StatsPoller,
    fills_since,
    fmt_ms,
    last_read_before,
    measure,
    median,
    sandbox_pid,
    spread,
    swift_posts,
)

import runtime
from actors.services import Services
from config import load_settings
from config.settings import SETTINGS
from demo.tour import TEMPLATE, Tour, demo_environment
from observability.logs import setup_logging
from storage.signals import SignalWaiter

log = logging.getLogger("venue_speed_bench")

WAIT_S = 1800.0
VENUE_TIMING = {"SANDBOX_SLOT_MS": "400", "SANDBOX_RPC_LATENCY_MS": "40",
                "SANDBOX_RPC_RPS_LIMIT": "50", "SANDBOX_SWIFT_LATENCY_MS": "30",
                "SANDBOX_FILL_PROFILE": "v3"}


@dataclass
class BenchTiming(AlertTiming):
    """One alert's timing, with the daemon's CPU per order (the load-independent cost)."""

    cpu_ms_to_last_post: float | None = None  # per order, from the alert to the last sub POST
    cpu_ms_per_order: float | None = None  # per order, from the alert until every copy is final


def cpu_ms_per_order(samples: list[Sample], orders: int, until: float | None = None
                     ) -> float | None:
    """Daemon CPU from the alert to `until` (wall time; default: every copy final), per order
    (source + copies): what the trade path costs whatever else the machine runs. CPU is
    counted in 10 ms ticks, read by the poller every 20 ms."""
    end = samples[-1] if until is None else last_read_before(samples, until)
    used = end.cpu_s.get("daemon", 0.0) - samples[0].cpu_s.get("daemon", 0.0)
    return used * 1000 / orders if orders and len(samples) > 1 else None


@dataclass
class Cohort:
    """A published source bot and its subscribers, with the position the alerts left."""

    source: dict[str, str]
    source_authority: str
    subscribers: set[str]
    position: int = 0
    last_posts: tuple[float, int] = (0.0, 0)  # previous alert: last POST's arrival, POSTs
    results: dict[str, list[BenchTiming]] = field(default_factory=dict)


class Bench:
    """The assembled daemon, and how to provision and fire at it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.tour = Tour(services, runtime.main)
        self.sandbox = self.tour.sandbox
        self.waiter = SignalWaiter(services.db.dsn)
        self.work_dir = Path(services.settings.state_dir) / "bench"
        settings = services.settings
        self.rate_per_s = float(settings.swift_rate_per_s)
        self.burst = int(settings.swift_rate_burst)
        self.watched = {"daemon": os.getpid()}
        child = sandbox_pid(os.getpid())
        if child is not None:
            self.watched["sandbox"] = child

    def provision(self, n: int) -> Cohort:
        """A creator's published SOL-PERP bot and `n` subscriber bots, through the CLI."""
        cli = self.tour.cli
        creator = cli("wallet", "create", "--fund", "2000")
        _funded(creator)
        bot = cli("bot", "create", "--wallet", creator["wallet"], "--market", "SOL-PERP",
                  "--leverage", "5", "--max-position-usd", "600", "--name", "bench-source")
        cli("bot", "publish", bot["bot_id"], "--profit-share-percent", "10")
        subscribers = set()
        for _ in range(n):
            wallet = cli("wallet", "create", "--fund", "1000")
            _funded(wallet)
            cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to", bot["bot_id"],
                "--capital-usd", "300")
            subscribers.add(wallet["agent_public_key"])
        return Cohort({"bot_id": bot["bot_id"], "secret": bot["webhook_secret"]},
                      creator["agent_public_key"], subscribers)

    def alert(self, cohort: Cohort, measured: bool) -> BenchTiming | None:
        """Fire the next alert (open if flat, else close), wait until every copy is final."""
        kind = "open" if cohort.position == 0 else "close"
        if measured:
            self._budget_refilled(cohort)
        body = TEMPLATE.format(action="buy" if kind == "open" else "sell", contracts=1,
                               position=1 if kind == "open" else 0, time=f"{time.time():.6f}")
        url = f"{self.tour.url}/api/webhook/tradingview/{cohort.source['bot_id']}"
        with StatsPoller(self.sandbox, self.work_dir, self.watched) as poller:
            t0 = time.time()
            answer = requests.post(url, params={"secret": cohort.source["secret"]},
                                   data=body.encode(), timeout=10,
                                   headers={"Content-Type": "application/json"})
            acked = time.time()
            answer.raise_for_status()
            signal_id = answer.json()["signal_id"]
            self.waiter.wait([signal_id], WAIT_S)
            copies = [r["id"] for r in self.services.db.fetchall(
                "SELECT id FROM webhook_signals WHERE parent_signal_id = %s", (signal_id,))]
            self.waiter.wait(copies, WAIT_S)
        cohort.position = 1 - cohort.position
        posts = swift_posts(self.sandbox, t0)
        mine = cohort.subscribers | {cohort.source_authority}
        ours = [p["at"] for p in posts if p["authority"] in mine]
        cohort.last_posts = (max(ours, default=0.0), len(ours))
        if not measured:
            return None
        seen = measure(kind, t0, acked, cohort.source_authority, cohort.subscribers, posts,
                       fills_since(self.sandbox, t0), poller.samples)
        orders, last = len(copies) + 1, seen.last_sub_post_ms
        timing = BenchTiming(
            **vars(seen), cpu_ms_per_order=cpu_ms_per_order(poller.samples, orders),
            cpu_ms_to_last_post=cpu_ms_per_order(
                poller.samples, orders, None if last is None else t0 + last / 1000))
        timing.stages = self.stages(signal_id, t0, posts, cohort.subscribers)
        return timing

    def stages(self, signal_id: str, t0: float, posts: list[dict[str, Any]],
               subscribers: set[str]) -> dict[str, tuple[float, float]]:
        """Where each copy's time went, from the database: copy rows committed (the source's
        transaction), the copy's trade row written (claimed, sized, about to send), its Swift
        POST recorded (right before the POST), and the POST's arrival at the venue."""
        rows = self.services.db.fetchall(
            "SELECT extract(epoch FROM s.received_at) AS made,"
            " extract(epoch FROM t.created_at) AS trade,"
            " extract(epoch FROM t.swift_submitted_at) AS submitted"
            " FROM webhook_signals s LEFT JOIN bot_trades t ON t.signal_id = s.id"
            " WHERE s.parent_signal_id = %s", (signal_id,))
        out: dict[str, tuple[float, float]] = {}
        for name in ("made", "trade", "submitted"):
            values = [(float(r[name]) - t0) * 1000 for r in rows if r[name] is not None]
            if values:
                out[name] = spread(values)
        arrivals: dict[str, float] = {}
        for post in posts:
            if post["authority"] in subscribers:
                arrivals.setdefault(post["authority"], (post["at"] - t0) * 1000)
        if arrivals:
            out["arrived"] = spread(list(arrivals.values()))
        return out

    def _budget_refilled(self, cohort: Cohort) -> None:
        """Wait until the previous alert's Swift POSTs are paid back into the gateway's bucket
        (SWIFT_RATE_PER_S from its last POST), so every alert starts with the full burst."""
        last_at, used = cohort.last_posts
        ready = last_at + min(used, self.burst) / self.rate_per_s
        if ready > time.time():
            gevent.sleep(ready - time.time())

    def phase(self, cohort: Cohort, name: str, runs: int, batched: bool) -> None:
        """Flatten if needed, then `runs` measured alerts, routed our way or the baseline's."""
        SeedPlanFanout.batched = batched
        try:
            if cohort.position:
                self.alert(cohort, measured=False)
            rows = cohort.results.setdefault(name, [])
            for run in range(runs):
                timing = self.alert(cohort, measured=True)
                assert timing is not None
                rows.append(timing)
                print(f"  {name} run {run + 1}: {describe(timing)}", flush=True)
        finally:
            SeedPlanFanout.batched = False

    def close(self) -> None:
        """Close the waiter's connection."""
        self.waiter.close()


def _funded(wallet: dict[str, Any]) -> None:
    if wallet.get("faucet_error"):
        raise RuntimeError(f"sandbox faucet failed: {wallet['faucet_error']}")


def describe(t: BenchTiming) -> str:
    """One run, on one line."""
    methods = ", ".join(f"{m} {n}" for m, n in t.rpc_before_first_sub_post.items()) or "none"
    return (f"{t.kind:<5} ack {t.ack_ms:.0f} | source POST {fmt_ms(t.source_post_ms)},"
            f" fill {fmt_ms(t.source_fill_ms)} | subs POST first {fmt_ms(t.first_sub_post_ms)}"
            f" last {fmt_ms(t.last_sub_post_ms)} ({t.sub_posts} subs, {t.sub_post_attempts}"
            f" POSTs, {t.sub_rejected} not 200) | sub fills: median {fmt_ms(t.median_sub_fill_ms)}"
            f", last Swift {fmt_ms(t.last_sub_swift_fill_ms)}, last {fmt_ms(t.last_sub_fill_ms)}"
            f" ({t.sub_fills_swift} Swift, {t.sub_fills_other} on-chain) | RPC before first sub"
            f" POST {t.rpc_before} ({methods}), total {t.rpc_all}, 429s {t.rpc_limited_total}"
            f"\n      copies (median/last ms): " + ", ".join(
                f"{k} {a:.0f}/{b:.0f}" for k, (a, b) in t.stages.items())
            + " | CPU busy alert->last sub POST: " + ", ".join(
                f"{k} {v:.0%}" for k, v in t.cpu_busy.items())
            + f" | daemon CPU per order: to last sub POST {_fmt_cpu(t.cpu_ms_to_last_post)},"
            f" until all final {_fmt_cpu(t.cpu_ms_per_order)}")


def _fmt_cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def bench_environment() -> dict[str, str]:
    """The demo's throw-away daemon at venue timing; every other daemon setting its default."""
    names = {s.name for s in SETTINGS}
    base = {k: v for k, v in os.environ.items() if k not in names}
    return demo_environment(base) | VENUE_TIMING | {"AUCTION_DURATION_SLOTS": "",
                                                   "LOG_LEVEL": "error"}


def run(counts: list[int], runs: int, baseline_runs: int) -> list[tuple[int, Cohort]]:
    """Assemble the daemon, then per subscriber count: provision, warm up, measure."""
    env = bench_environment()
    os.environ.update(env)  # the CLI commands read their settings from it
    settings = load_settings(env)
    setup_logging(settings.log_level)
    done = []
    with runtime.assembled(settings, env) as services:
        root = runtime.start_tree(services, lambda _e: None, changes=seed_plan_changes(services))
        assert root is not None
        bench = Bench(services)
        print(f"sandbox {bench.sandbox}: {VENUE_TIMING}", flush=True)
        try:
            for n in counts:
                started = time.monotonic()
                cohort = bench.provision(n)
                print(f"{n} subscribers: provisioned in {time.monotonic() - started:.0f} s",
                      flush=True)
                bench.alert(cohort, measured=False)  # warm-up: open ...
                bench.alert(cohort, measured=False)  # ... and close
                bench.phase(cohort, "ours", runs, batched=False)
                if baseline_runs:
                    bench.phase(cohort, "baseline", baseline_runs, batched=True)
                done.append((n, cohort))
        finally:
            bench.close()
            runtime.stop_tree(root)
    return done


def report(done: list[tuple[int, Cohort]], runs: int, baseline_runs: int) -> None:
    """The medians as a markdown table, and the goals."""
    print(f"\nmedians of {runs} runs (baseline: {baseline_runs}); times from the alert leaving"
          " the client; webhook ack p50 shown per row\n")
    print("subscribers | ack | alert->source POST | ->first sub POST | ->last sub POST"
          " | ->last sub fill | RPC calls (before first sub POST / total) | baseline last sub"
          " POST | ratio | daemon CPU per order (to last sub POST / until all final)")
    print("--- | --- | --- | --- | --- | --- | --- | --- | --- | ---")
    for n, cohort in done:
        ours = cohort.results["ours"]
        base = cohort.results.get("baseline", [])
        last = median(t.last_sub_post_ms for t in ours)
        base_last = median(t.last_sub_post_ms for t in base)
        ratio = f"{base_last / last:.1f}x" if last and base_last else "-"
        rpc_before = median(t.rpc_before for t in ours)
        rpc_total = median(t.rpc_all for t in ours)
        print(f"{n} | {fmt_ms(median(t.ack_ms for t in ours))}"
              f" | {fmt_ms(median(t.source_post_ms for t in ours))}"
              f" | {fmt_ms(median(t.first_sub_post_ms for t in ours))} | {fmt_ms(last)}"
              f" | {fmt_ms(median(t.last_sub_fill_ms for t in ours))}"
              f" | {rpc_before:.0f} / {rpc_total:.0f} | {fmt_ms(base_last)} | {ratio}"
              f" | {_fmt_cpu(median(t.cpu_ms_to_last_post for t in ours))}"
              f" / {_fmt_cpu(median(t.cpu_ms_per_order for t in ours))}")
    goals = {100: 250.0, 500: 1000.0}
    print()
    for n, cohort in done:
        ours = cohort.results["ours"]
        last = median(t.last_sub_post_ms for t in ours)
        if n in goals and last is not None:
            verdict = "met" if last < goals[n] else "NOT met"
            print(f"goal {n} subscribers' last POST < {goals[n]:.0f} ms: {fmt_ms(last)}, "
                  f"{verdict}")
        if n == 100:
            before = median(t.rpc_before for t in ours)
            print(f"goal RPC calls before the Swift POSTs <= 10 (100 subscribers): {before:.0f},"
                  f" {'met' if before is not None and before <= 10 else 'NOT met'}")


def main() -> None:
    """Parse, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,10,100,500",
                        help="comma-separated subscriber counts (default 1,10,100,500)")
    parser.add_argument("--runs", type=int, default=5, help="measured alerts per count")
    parser.add_argument("--baseline-runs", type=int, default=None,
                        help="alerts routed the original design's way per count (default: --runs)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    args = parser.parse_args()
    counts = [int(n) for n in args.subscribers.split(",")]
    baseline_runs = 0 if args.no_baseline else (
        args.runs if args.baseline_runs is None else args.baseline_runs)
    done = run(counts, args.runs, baseline_runs)
    report(done, args.runs, baseline_runs)


if __name__ == "__main__":
    main()
