"""The v3 maker fill-time profile: seeded draws of the fill slot, fills at the drawn slot and at
the auction price of that slot, configurable shares, liquidity and faults still on top."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from solders.keypair import Keypair

from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    HTTP_TIMEOUT,
    current_slot,
    faucet,
    fetch_user,
    order_params,
    perp_base,
    post_order,
    signed_order,
)

PRICE = 100_000_000
DURATION = 20
START, END = 99_900_000, 100_100_000  # long: oracle -10 bps -> +10 bps over 20 slots
ORDERS_PER_WALLET = 25


def _config(url: str, **changes: Any) -> requests.Response:
    return requests.post(f"{url}/sandbox/config", json=changes, timeout=HTTP_TIMEOUT)


def _setup(url: str) -> None:
    resp = requests.post(f"{url}/sandbox/oracle", json={"market_index": 0, "price": 100.0,
                                                        "freeze": True}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200


def _post_orders(url: str, wallets: list[Keypair], ahead: int = 0) -> int:
    """ORDERS_PER_WALLET orders per wallet, all signed for the current slot + ``ahead`` (the
    web UI signs current + 7); returns the signed slot."""
    slot = current_slot(url) + ahead
    for w, kp in enumerate(wallets):
        for i in range(ORDERS_PER_WALLET):
            params = order_params(base=10_000_000, auction=(DURATION, START, END))
            body, _ = signed_order(kp, params, slot, f"v3{w:02d}{i:04d}".encode())
            assert post_order(url, body).status_code == 200
    return slot


def _wallets(url: str, n: int) -> list[Keypair]:
    wallets = [Keypair.from_seed(bytes([i + 1]) * 32) for i in range(n)]
    for kp in wallets:
        faucet(url, kp, quote=5_000, num_orders=128)
    return wallets


def _draws(sandbox: SandboxServer) -> dict[tuple[str, int], tuple[str, int | None]]:
    """(authority, order id) -> (bucket, offset), read from the sandbox's own state."""
    with sandbox.exchange.lock:
        return {(str(u.authority), o.order_id): (o.fill_bucket, o.fill_offset)
                for u in sandbox.exchange.users.values() for o in u.open_orders()}


def _scenario(seed: int, wallets: int = 8) -> tuple[SandboxServer, int, dict]:
    server = SandboxServer("127.0.0.1", 0, seed=seed, slot_ms=0, genesis_ts=1_800_000_000.0)
    server.start()
    url = server.url
    _setup(url)
    assert _config(url, fill_profile="v3").status_code == 200
    # signed 3 slots ahead: placed next slot, none due before every draw has been read
    signed_slot = _post_orders(url, _wallets(url, wallets), ahead=3)
    server.step()  # every order placed (placement delay 1 slot)
    return server, signed_slot, _draws(server)


def test_v3_draws_are_seeded_and_makers_fill_at_the_drawn_slot() -> None:
    server, signed_slot, draws = _scenario(seed=7)
    try:
        url = server.url
        n = len(draws)
        assert n == 8 * ORDERS_PER_WALLET
        buckets = [b for b, _ in draws.values()]
        assert abs(buckets.count("fast") / n - 0.85) <= 0.07
        assert abs(buckets.count("late") / n - 0.10) <= 0.06
        assert buckets.count("never") == n - buckets.count("fast") - buckets.count("late")
        for bucket, offset in draws.values():
            if bucket == "fast":
                assert offset in (1, 2)
            elif bucket == "late":
                assert 3 <= offset <= DURATION
            else:
                assert offset is None
        server.step(signed_slot + DURATION + 2 - server.exchange.slot)  # through the auction
        fills = requests.get(f"{url}/sandbox/fills", timeout=HTTP_TIMEOUT).json()["fills"]
        assert len(fills) == buckets.count("fast") + buckets.count("late")
        for fill in fills:
            bucket, offset = draws[(fill["authority"], fill["order_id"])]
            assert (fill["source"], fill["profile_bucket"]) == ("swift_maker", bucket)
            assert fill["slot"] == signed_slot + offset == fill["order_slot"] + offset
            assert fill["price"] == START + (END - START) * offset // DURATION
            assert fill["base"] == 10_000_000
        stats = requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()["totals"]
        for bucket in ("fast", "late", "never"):
            assert stats.get(f"v3_drawn_{bucket}", 0) == buckets.count(bucket)
        assert stats["v3_fills_fast"] == buckets.count("fast")
        assert stats.get("v3_fills_late", 0) == buckets.count("late")
        # "never" orders outlive the auction unfilled (until their default max_ts)
        assert [(b, o) for b, o in _draws(server).values()] == [("never", None)] * \
            buckets.count("never")
    finally:
        server.stop()
    again, _, draws_again = _scenario(seed=7, wallets=2)
    again.stop()
    other, _, draws_other = _scenario(seed=8, wallets=2)
    other.stop()
    first_two = {k: v for k, v in draws.items() if k in draws_again}
    assert draws_again == first_two  # same seed, same requests: same draws
    assert draws_other != draws_again


def test_v3_shares_are_configurable(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _setup(url)
    resp = _config(url, fill_profile="v3", v3_fast_share=0.0, v3_late_share=1.0)
    assert resp.status_code == 200
    assert (resp.json()["fill_profile"], resp.json()["v3_late_share"]) == ("v3", 1.0)
    _post_orders(url, _wallets(url, 1))
    sandbox.step()
    assert {b for b, _ in _draws(sandbox).values()} == {"late"}


@pytest.mark.parametrize("bad", [{"fill_profile": "v4"}, {"fill_profile": 3},
                                 {"v3_fast_share": 0.95, "v3_late_share": 0.1},
                                 {"v3_fast_share": -0.1}, {"v3_late_share": "x"}])
def test_v3_config_is_validated(sandbox: SandboxServer, bad: dict) -> None:
    resp = _config(sandbox.url, **bad)
    assert resp.status_code == 400
    assert sandbox.exchange.config.fill_profile == "edge"
    assert sandbox.exchange.config.v3_fast_share == 0.85


def test_v3_under_liquidity_modes_and_maker_faults(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _setup(url)
    assert _config(url, fill_profile="v3", v3_fast_share=1.0, v3_late_share=0.0).status_code \
        == 200
    dry, paused, partial = Keypair(), Keypair(), Keypair()
    for kp in (dry, paused, partial):
        faucet(url, kp)
    requests.post(f"{url}/sandbox/liquidity", json={"market_index": 0, "mode": "none"},
                  timeout=HTTP_TIMEOUT)
    slot = current_slot(url)
    body, _ = signed_order(dry, order_params(base=100_000_000, auction=(DURATION, START, END)),
                           slot, b"v3-dry01")
    assert post_order(url, body).status_code == 200
    sandbox.step()
    requests.post(f"{url}/sandbox/liquidity", json={"market_index": 0, "mode": "partial",
                                                    "fraction": 0.5}, timeout=HTTP_TIMEOUT)
    slot = current_slot(url)
    for kp, uuid in ((paused, b"v3-pau01"), (partial, b"v3-par01")):
        body, _ = signed_order(kp, order_params(base=100_000_000,
                                                auction=(DURATION, START, END)), slot, uuid)
        assert post_order(url, body).status_code == 200
    requests.post(f"{url}/sandbox/faults", json={"swift_makers_paused": True},
                  timeout=HTTP_TIMEOUT)
    sandbox.step(3)  # past every drawn slot (1-2) while makers are away
    for kp in (dry, paused, partial):
        assert perp_base(fetch_user(url, kp.pubkey())) == 0
    requests.post(f"{url}/sandbox/faults", json={"clear": True}, timeout=HTTP_TIMEOUT)
    sandbox.step()  # makers back: due orders fill now, at this slot's auction price
    assert perp_base(fetch_user(url, dry.pubkey())) == 0  # placed with no liquidity
    for kp in (paused, partial):
        assert perp_base(fetch_user(url, kp.pubkey())) == 50_000_000  # partial: half
    fills = requests.get(f"{url}/sandbox/fills", timeout=HTTP_TIMEOUT).json()["fills"]
    assert {f["slot"] for f in fills} == {slot + 4}
    assert {f["price"] for f in fills} == {START + (END - START) * 4 // DURATION}


def test_edge_is_the_default_profile(sandbox: SandboxServer) -> None:
    config = requests.get(f"{sandbox.url}/sandbox/config", timeout=HTTP_TIMEOUT).json()
    assert (config["fill_profile"], config["v3_fast_share"], config["v3_late_share"]) == (
        "edge", 0.85, 0.10)
