"""Venue micro-benchmarks, run by hand: ``.venv/bin/python bench/venue_bench.py [--swift-url URL]``.

Prints a table: Swift message encode+sign per order (our struct.pack encoder vs driftpy's anchor
coder, both followed by the same solders signature), legacy placeAndTakePerpOrder build+sign
throughput, and optionally Swift POST round trips per second against a running sandbox.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftpy.drift_client import DriftClient
from driftpy.types import SignedMsgOrderParamsMessage
from solders.hash import Hash
from solders.keypair import Keypair

from venue.auction import AuctionConfig
from venue.drift_program import drift_program
from venue.drift_types import to_order_params
from venue.legacy_tx import place_and_take_perp_order_tx
from venue.profiles import PROFILES
from venue.swift_message import OrderSigner, sign_order
from venue.swift_order import SignedMsgOrder, market_order, new_uuid


def _orders(n: int) -> list[SignedMsgOrder]:
    rng = random.Random(1)
    out = []
    for _ in range(n):
        spec = market_order(direction=rng.randrange(2), base_asset_amount=rng.randrange(1, 10**12),
                            market_index=rng.randrange(85),
                            oracle_price=rng.randrange(10**4, 10**11), auction=AuctionConfig(),
                            reduce_only=rng.random() < 0.3)
        out.append(SignedMsgOrder(params=spec, slot=rng.randrange(10**9), uuid=new_uuid()))
    return out


def _median_us(fn, items) -> float:
    samples = []
    for item in items:
        t0 = time.perf_counter_ns()
        fn(item)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--txs", type=int, default=2000)
    parser.add_argument("--swift-url", help="a running sandbox, e.g. http://127.0.0.1:8910")
    parser.add_argument("--swift-posts", type=int, default=500)
    args = parser.parse_args()

    kp = Keypair()
    orders = _orders(args.orders)
    stub = SimpleNamespace(program=drift_program(PROFILES["drift-mainnet"].program_id))

    signer = OrderSigner(kp)

    def ours(m: SignedMsgOrder) -> None:
        sign_order(signer, m)

    def theirs(m: SignedMsgOrder) -> None:
        msg = SignedMsgOrderParamsMessage(
            signed_msg_order_params=to_order_params(m.params), sub_account_id=m.sub_account_id,
            slot=m.slot, uuid=m.uuid, take_profit_order_params=None, stop_loss_order_params=None,
            max_margin_ratio=None, builder_idx=None, builder_fee_tenth_bps=None)
        raw = DriftClient.encode_signed_msg_order_params_message(stub, msg)
        kp.sign_message(raw.hex().encode())

    ours(orders[0])
    theirs(orders[0])
    ours_us = _median_us(ours, orders)
    theirs_us = _median_us(theirs, orders)

    profile = PROFILES["drift-mainnet"]
    blockhash = Hash.new_unique()
    specs = [m.params for m in orders[: args.txs]]
    place_and_take_perp_order_tx(profile, kp, specs[0], None, blockhash)
    t0 = time.perf_counter()
    for spec in specs:
        place_and_take_perp_order_tx(profile, kp, spec, None, blockhash)
    tx_per_s = len(specs) / (time.perf_counter() - t0)

    rows = [
        ("swift encode+sign, ours (median)", f"{ours_us:.1f} us"),
        ("swift encode+sign, driftpy coder (median)", f"{theirs_us:.1f} us"),
        ("speed-up (driftpy / ours)", f"{theirs_us / ours_us:.1f}x"),
        ("legacy placeAndTake build+sign", f"{tx_per_s:,.0f} tx/s"),
    ]
    if args.swift_url:
        from venue.swift_client import SwiftClient

        client = SwiftClient(args.swift_url)
        bodies = [sign_order(kp, m).body for m in orders[: args.swift_posts]]
        t0 = time.perf_counter()
        accepted = sum(client.submit(b).outcome.accepted for b in bodies)
        rate = len(bodies) / (time.perf_counter() - t0)
        rows.append(("swift POST round trips (sequential)",
                     f"{rate:,.0f} /s ({accepted}/{len(bodies)} accepted)"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
