"""Benchmark of the supervision tree: 1k and 10k supervised actors (run by hand, prints a table).

    .venv/bin/python bench/supervision_bench.py [--sizes 1000,10000] [--samples 500]

Per size: time until the supervisor and every child finished on_start; resident memory
added; median and p99 of an ask round trip to a child resolved by name; median and p99 of the
time from a crash to the restarted child answering (backoff set to zero, so this is the
mechanism's own cost).
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402
import argparse
import random
import resource
import statistics
import time
from typing import Any

import pykka
from gevent.queue import Queue

from supervision import (
    Backoff,
    ChildSpec,
    CrashDrill,
    Intensity,
    Status,
    SupervisedActor,
    Supervisor,
    SupervisorEvent,
    whereis,
)


class Worker(SupervisedActor):
    """The smallest useful actor: echoes."""

    def on_receive(self, message: Any) -> Any:
        return message


def rss_mib() -> float:
    """Current resident set size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(size: int, samples: int) -> dict[str, float]:
    """Measure one tree of `size` workers."""
    events: Queue = Queue()
    rss_before = rss_mib()
    started = time.perf_counter()
    sup = Supervisor.start(
        [ChildSpec(f"w{i}", Worker) for i in range(size)],
        backoff=Backoff(base_s=0.0), intensity=Intensity(max_restarts=samples * 2),
        listener=lambda e: events.put(e))
    sup.ask(Status(), timeout=600)  # answered once every child finished on_start
    ready_s = time.perf_counter() - started
    rss_added = rss_mib() - rss_before
    rng = random.Random(1)
    asks = []
    for _ in range(samples):
        name = f"w{rng.randrange(size)}"
        t0 = time.perf_counter()
        whereis(sup, name, 5).ask("ping", timeout=5)
        asks.append((time.perf_counter() - t0) * 1e6)
    recoveries = []
    for _ in range(min(samples, 200)):
        name = f"w{rng.randrange(size)}"
        ref = whereis(sup, name, 5)
        t0 = time.perf_counter()
        ref.tell(CrashDrill())
        while True:
            event: SupervisorEvent = events.get(timeout=10)
            if event.kind == "restarted" and event.child == name:
                break
        whereis(sup, name, 5).ask("ping", timeout=5)
        recoveries.append((time.perf_counter() - t0) * 1e3)
    sup.stop(block=True, timeout=600)
    assert not pykka.ActorRegistry.get_all()
    return {"size": size, "ready_s": ready_s, "rss_mib": rss_added,
            "ask_p50_us": statistics.median(asks), "ask_p99_us": pct(asks, 0.99),
            "restart_p50_ms": statistics.median(recoveries),
            "restart_p99_ms": pct(recoveries, 0.99)}


def main() -> None:
    """Parse arguments, run each size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    rows = [run(int(n), args.samples) for n in args.sizes.split(",")]
    header = ("actors", "ready (s)", "RSS added (MiB)", "ask p50 (µs)", "ask p99 (µs)",
              "crash→answer p50 (ms)", "crash→answer p99 (ms)")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(f"{r['size']} | {r['ready_s']:.2f} | {r['rss_mib']:.1f} | {r['ask_p50_us']:.0f} | "
              f"{r['ask_p99_us']:.0f} | {r['restart_p50_ms']:.2f} | {r['restart_p99_ms']:.2f}")


if __name__ == "__main__":
    main()
