"""A node's scale-out at venue timing, WORKERS=0/1/2 (run by hand; prints progress lines, then a
header and one markdown table).

    .venv/bin/python bench/scale_bench.py [--quick] [--workers 0,1,2] [--runs N] [--trials N]

This file parses, runs and prints; bench/scale_node.py provisions the fleet and runs a node,
bench/scale_load.py sends the alerts and reads what became of them, bench/scale_measures.py
holds the four measures.

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
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resilience_bench import DEFAULTS, Lab, fmt_s
from scale_measures import ACK_BOTS, ACK_RATE, measure_node
from scale_node import Fleet, provision
from venue_speed_bench import VENUE_TIMING

from storage.database import Database
from storage.signals import SignalWaiter

SIZES = {"full": {"ack_s": 5.0, "burst": 1000, "subscribers": 500, "runs": 3, "trials": 3},
         "quick": {"ack_s": 2.0, "burst": 100, "subscribers": 100, "runs": 1, "trials": 1}}
NODE_SETTINGS = {"WEBHOOK_BOT_RATE_PER_S": "1000", "WEBHOOK_BOT_BURST": "1000"}


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
