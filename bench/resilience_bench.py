"""Resilience numbers of the real daemon (run by hand; prints per-step lines and a markdown table).

    .venv/bin/python bench/resilience_bench.py [--only kill|drain|pg-restart|outage|ack]
        [--kill-trials 5] [--outage-s 30] [--seed 7] [--slot-ms 400] [--rpc-latency-ms 40] ...

Each measurement runs `python runtime.py run` as a child process (tests/daemon.py: its own
STATE_DIR, ports and notify socket; READY=1 awaited) against two things this script owns:
- a private embedded PostgreSQL (pgserver) in a temporary directory, a fresh database per
  measurement, which the script stops and starts for the restart and outage measurements
  (no one else's database is touched);
- the exchange sandbox as a separate process (`python -m sandbox`) at venue timing by default:
  400 ms slots, JSON-RPC 40 ms per request and limited to 50 calls/s, Swift 30 ms per request,
  the `v3` fill profile (as bench/venue_speed_bench.py).
Every daemon setting is its default (inherited settings are dropped from the environment) but
the per-bot webhook rate limit (WEBHOOK_BOT_RATE_PER_S / WEBHOOK_BOT_BURST: 1000) and the keys.
Bots are provisioned through the operator CLI (`--json`); each bot has its own wallet, so its
orders are counted at the sandbox by its agent's authority. Alerts are unique TradingView
bodies (an `order_id` each) that open and close one contract alternately: one order each.

Measurements:
1. kill: a published bot with --subscribers copies; per trial one alert, SIGKILL of the daemon
   at a random moment (seeded RNG, 0 to --kill-max-delay-s after the 202), a restart on the
   same STATE_DIR, a wait until the source signal, every copy and every retry job are final,
   then the fills per bot at the sandbox since the alert: lost = bots with 0, doubled = > 1.
2. drain: alerts paced at --drain-rate across --drain-bots bots, SIGTERM after --drain-after-s;
   SIGTERM -> process exit, the daemon's own "drained in X s" line, the answers to alerts sent
   during the drain that were not 202; then a restart and every accepted alert's fills checked.
3. pg-restart: with the daemon idle, `pg_ctl stop -m fast`, /readyz seen 503, then the start
   command: start -> PostgreSQL accepting, start -> /readyz 200 again.
4. outage: PostgreSQL stopped for --outage-s while alerts are paced at --outage-rate across
   --outage-bots bots; the answers (202 journal / 202 accepted / 503 / other); then the start,
   and the journaled alerts counted final `done` and filled once at the sandbox.
5. ack: alerts paced at --ack-rate for --ack-s across --ack-bots bots (each bot warmed up with
   one open/close first); the client-side latency of every POST (send -> answer, new TCP
   connection each, as TradingView does), p50/p99/max, the count of 202, and how many of the
   signals were final within --wait-s after the last one.
Client-side times include this process's own scheduling (gevent, one process sending).
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402
import argparse
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resilience_lab import DEFAULTS, Bot, Lab, wait_until
from resilience_load import alert_body
from resilience_measures import MEASURES, Row, fmt_s, pct

__all__ = ["DEFAULTS", "Bot", "Lab", "alert_body", "fmt_s", "pct", "wait_until"]  # bench/scale_*


def parse() -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=list(MEASURES), action="append",
                   help="run only this measurement (repeatable; default all)")
    p.add_argument("--seed", type=int, default=7, help="sandbox seed and kill-delay RNG seed")
    p.add_argument("--slot-ms", type=int, default=400, help="sandbox slot time")
    p.add_argument("--rpc-latency-ms", type=int, default=40, help="added to each JSON-RPC call")
    p.add_argument("--rpc-rps-limit", type=int, default=50, help="JSON-RPC calls/s (0: none)")
    p.add_argument("--swift-latency-ms", type=int, default=30, help="added to each Swift call")
    p.add_argument("--fill-profile", choices=("edge", "v3"), default="v3")
    p.add_argument("--kill-trials", type=int, default=5)
    p.add_argument("--subscribers", type=int, default=5, help="copies in the kill trials")
    p.add_argument("--kill-max-delay-s", type=float, default=2.0)
    p.add_argument("--kill-retry-lease-s", type=float, default=30.0,
                   help="RETRY_LEASE_S in the kill trials (the daemon's default is "
                        f"{DEFAULTS['RETRY_LEASE_S']}): an order a crash left pending is "
                        "reconciled one lease after the restart")
    p.add_argument("--drain-rate", type=float, default=50.0)
    p.add_argument("--drain-bots", type=int, default=10)
    p.add_argument("--drain-after-s", type=float, default=5.0)
    p.add_argument("--pg-restarts", type=int, default=3)
    p.add_argument("--outage-s", type=float, default=30.0)
    p.add_argument("--outage-rate", type=float, default=2.0)
    p.add_argument("--outage-bots", type=int, default=4)
    p.add_argument("--ack-rate", type=float, default=100.0)
    p.add_argument("--ack-s", type=float, default=10.0)
    p.add_argument("--ack-bots", type=int, default=20)
    p.add_argument("--wait-s", type=float, default=180.0, help="longest wait for signals")
    p.add_argument("--grace-s", type=float, default=2.0,
                   help="wait after signals are final before counting fills")
    return p.parse_args()


def main() -> None:
    """Parse, measure, print the table."""
    args = parse()
    for name in DEFAULTS:  # every daemon setting its default unless the bench sets it
        os.environ.pop(name, None)
    command = shlex.join([".venv/bin/python", "bench/resilience_bench.py", *sys.argv[1:]])
    print(f"$ {command}", flush=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start",
          flush=True)
    lab = Lab(args)
    print("sandbox: " + " ".join(lab.sandbox.argv[3:]), flush=True)
    rows = []
    try:
        for name, fn in MEASURES.items():
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            print(f"{name} ...", flush=True)
            try:
                rows.append(fn(lab, args))
            except Exception as exc:  # one failed measurement still leaves the others' rows
                rows.append(Row(name, "-", f"did not complete: {type(exc).__name__}: {exc}"))
                print(f"  {name} failed: {exc!r}", flush=True)
            print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        lab.close()
    print(f"\n$ {command}\n")
    print("| measure | n | result |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {row.measure} | {row.n} | {row.result} |")


if __name__ == "__main__":
    main()
