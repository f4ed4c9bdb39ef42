"""``quantumvault sandbox`` command line: run the sandbox, or change a running one's faults.

  quantumvault sandbox [--host 127.0.0.1] [--port 8899] [--seed N] [--slot-ms 400]
                       [--rpc-latency-ms 0] [--rpc-rps-limit 0] [--swift-latency-ms 0]
                       [--fill-profile edge|v3]
  quantumvault sandbox faults --url http://127.0.0.1:PORT [--swift-status 503] ... | --clear
  quantumvault sandbox faucet --url ... --authority <base58> --quote 1000
  quantumvault sandbox liquidity --url ... [--market-index 0] --mode partial --fraction 0.5
  quantumvault sandbox stats --url ...

The caller (runtime.py) must have monkey-patched gevent before calling ``main``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import requests

from sandbox.server import SandboxServer

CONTROL_TIMEOUT_S = 5.0


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true/false")


_EPILOG = """\
venue timing (all off by default; see sandbox/README.md):
  --rpc-latency-ms / --swift-latency-ms  added to every JSON-RPC / Swift request, a gevent sleep
      per request (concurrent requests wait in parallel). Start-up values are the baseline that
      `faults --clear` returns to; change them at runtime with `faults --rpc-latency-ms ...`.
  --rpc-rps-limit N  token bucket per RPC path (primary /, backup /backup): N calls/s sustained,
      burst N, a batch costs one per call; beyond it HTTP 429 + Retry-After + JSON-RPC error 429,
      counted as rpc_rate_limited in /sandbox/stats. Runtime: `faults --rpc-rps-limit N`.
  --fill-profile edge|v3  edge: makers fill once the auction price is --maker-edge-bps better
      than the oracle. v3: each signed order draws (seeded by --seed) when makers fill it:
      85 % 1-2 slots after its signed slot, 10 % later in its auction, 5 % never; shares via
      POST /sandbox/config {"v3_fast_share": 0.85, "v3_late_share": 0.10}.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantumvault sandbox",
                                description="Local exchange sandbox (Swift API + Solana RPC).",
                                epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=8899, help="port (0 picks a free one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the oracle walk and hashes")
    p.add_argument("--slot-ms", type=int, default=400, help="slot time; 0 = step manually")
    p.add_argument("--maker-edge-bps", type=float, help="makers fill within this of the oracle")
    p.add_argument("--slippage-bps", type=float, help="placeAndTake fill vs oracle")
    p.add_argument("--taker-fee-bps", type=float, help="taker fee on every fill")
    p.add_argument("--rpc-latency-ms", type=int, default=0, metavar="MS",
                   dest="start_rpc_latency_ms", help="added to every JSON-RPC request (0 = none)")
    p.add_argument("--rpc-rps-limit", type=int, default=0, metavar="N", dest="start_rpc_rps_limit",
                   help="JSON-RPC calls per second per RPC path, then HTTP 429 (0 = unlimited)")
    p.add_argument("--swift-latency-ms", type=int, default=0, metavar="MS",
                   dest="start_swift_latency_ms", help="added to every Swift request (0 = none)")
    p.add_argument("--fill-profile", choices=("edge", "v3"), default="edge",
                   help="when makers fill Swift auctions (default edge)")
    sub = p.add_subparsers(dest="command")

    f = sub.add_parser("faults", help="show or change faults of a running sandbox")
    f.add_argument("--url", required=True)
    f.add_argument("--clear", action="store_true", help="reset all faults first")
    f.add_argument("--latency-ms", type=int)
    f.add_argument("--swift-latency-ms", type=int)
    f.add_argument("--rpc-latency-ms", type=int)
    f.add_argument("--rpc-rps-limit", type=int)
    f.add_argument("--swift-status", type=int, choices=(429, 500, 502, 503, 504))
    f.add_argument("--swift-status-count", type=int)
    f.add_argument("--swift-timeout", type=_bool)
    f.add_argument("--swift-timeout-process", type=_bool)
    f.add_argument("--hang-ms", type=int)
    f.add_argument("--health-412", type=_bool)
    f.add_argument("--hash-status-500", type=_bool)
    f.add_argument("--rpc-primary-down", type=_bool)
    f.add_argument("--rpc-backup-down", type=_bool)
    f.add_argument("--rpc-down-mode", choices=("503", "reset", "hang"))
    f.add_argument("--makers-paused", type=_bool)
    f.add_argument("--swift-makers-paused", type=_bool)
    f.add_argument("--swift-makers-paused-for", metavar="AUTHORITIES",
                   help="comma-separated authorities whose Swift auctions get no maker bids")
    f.add_argument("--swift-placement-paused", type=_bool)

    fa = sub.add_parser("faucet", help="create a funded user on a running sandbox")
    fa.add_argument("--url", required=True)
    fa.add_argument("--authority", required=True)
    fa.add_argument("--quote", type=float, default=1000.0, help="USDC deposited into Drift")
    fa.add_argument("--wallet-quote", type=float, default=0.0, help="USDC left in the wallet")

    lq = sub.add_parser("liquidity", help="set maker liquidity of a market (or the default)")
    lq.add_argument("--url", required=True)
    lq.add_argument("--market-index", type=int)
    lq.add_argument("--mode", required=True, choices=("full", "partial", "none"))
    lq.add_argument("--fraction", type=float, default=0.5)

    st = sub.add_parser("stats", help="print counters of a running sandbox")
    st.add_argument("--url", required=True)
    return p


_FAULT_FLAGS = ("latency_ms", "swift_latency_ms", "rpc_latency_ms", "rpc_rps_limit",
                "swift_status", "swift_status_count", "swift_timeout", "swift_timeout_process",
                "hang_ms",
                "health_412", "hash_status_500", "rpc_primary_down", "rpc_backup_down",
                "rpc_down_mode", "makers_paused", "swift_makers_paused", "swift_makers_paused_for",
                "swift_placement_paused")


def _control(method: str, url: str, payload: dict[str, Any] | None = None) -> int:
    try:
        resp = requests.request(method, url, json=payload, timeout=CONTROL_TIMEOUT_S)
    except requests.RequestException as exc:
        print(f"sandbox not reachable: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(resp.json(), indent=2, sort_keys=True))
    return 0 if resp.ok else 1


def main(argv: list[str]) -> int:
    """Run the sandbox (no subcommand) or a control subcommand; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "faults":
        changes = {k: getattr(args, k) for k in _FAULT_FLAGS if getattr(args, k) is not None}
        if args.clear:
            changes["clear"] = True
        base = args.url.rstrip("/")
        if not changes:
            return _control("GET", f"{base}/sandbox/faults")
        return _control("POST", f"{base}/sandbox/faults", changes)
    if args.command == "faucet":
        return _control("POST", f"{args.url.rstrip('/')}/sandbox/faucet",
                        {"authority": args.authority, "quote": args.quote,
                         "wallet_quote": args.wallet_quote})
    if args.command == "liquidity":
        return _control("POST", f"{args.url.rstrip('/')}/sandbox/liquidity",
                        {"market_index": args.market_index, "mode": args.mode,
                         "fraction": args.fraction})
    if args.command == "stats":
        return _control("GET", f"{args.url.rstrip('/')}/sandbox/stats")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        timing = {"rpc_latency_ms": args.start_rpc_latency_ms,
                  "rpc_rps_limit": args.start_rpc_rps_limit,
                  "swift_latency_ms": args.start_swift_latency_ms}
        server = SandboxServer(args.host, args.port, seed=args.seed, slot_ms=args.slot_ms,
                               faults={k: v for k, v in timing.items() if v})
        server.exchange.update_config({
            name: value for name, value in (("maker_edge_bps", args.maker_edge_bps),
                                            ("slippage_bps", args.slippage_bps),
                                            ("taker_fee_bps", args.taker_fee_bps),
                                            ("fill_profile", args.fill_profile))
            if value is not None})
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    server.start()
    print(f"sandbox ready url={server.url} rpc={server.rpc_url} backup_rpc={server.backup_rpc_url}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    sys.exit(main(sys.argv[1:]))
