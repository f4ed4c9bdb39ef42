"""Same seed + same requests + same slot steps => same venue state; another seed differs."""

from __future__ import annotations

import requests
from solders.keypair import Keypair

from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    HTTP_TIMEOUT,
    auction_around,
    build_tx,
    current_slot,
    faucet,
    oracle_price,
    order_params,
    place_and_take_ix,
    post_order,
    send_tx,
    signed_order,
)


def _scenario(seed: int) -> tuple[str, list[dict], dict]:
    server = SandboxServer("127.0.0.1", 0, seed=seed, slot_ms=0, genesis_ts=1_800_000_000.0)
    server.start()
    try:
        url = server.url
        kp = Keypair.from_seed(bytes(range(32)))
        faucet(url, kp, quote=5_000)
        requests.post(f"{url}/sandbox/liquidity", json={"market_index": 1, "mode": "partial",
                                                        "fraction": 0.3}, timeout=HTTP_TIMEOUT)
        for i, (market, direction) in enumerate([(0, "long"), (1, "short"), (2, "long")]):
            server.step(3)
            params = order_params(direction=direction, base=100_000_000, market_index=market,
                                  auction=auction_around(oracle_price(url, market), direction,
                                                         duration=30))
            body, _ = signed_order(kp, params, current_slot(url), f"det-{i:04d}".encode())
            assert post_order(url, body).status_code == 200
        server.step(10)
        send_tx(url, build_tx(url, kp, [place_and_take_ix(kp, order_params(
            direction="short", base=50_000_000))]))
        server.step(40)
        state = requests.get(f"{url}/sandbox/state", timeout=HTTP_TIMEOUT).json()
        fills = requests.get(f"{url}/sandbox/fills", timeout=HTTP_TIMEOUT).json()["fills"]
        for fill in fills:
            assert fill.pop("at") > 0  # wall time of the fill: the one non-deterministic field
        prices = requests.get(f"{url}/sandbox/oracle", timeout=HTTP_TIMEOUT).json()["prices"]
        return state["digest"], fills, prices
    finally:
        server.stop()


def test_same_seed_same_state() -> None:
    digest_a, fills_a, prices_a = _scenario(11)
    digest_b, fills_b, prices_b = _scenario(11)
    assert fills_a and len(fills_a) >= 3
    assert fills_a == fills_b
    assert prices_a == prices_b
    assert digest_a == digest_b


def test_other_seed_other_prices() -> None:
    _, _, prices_a = _scenario(11)
    _, _, prices_b = _scenario(12)
    assert prices_a != prices_b
