"""Maker liquidity per market (full, partial, none) and expiry of unfilled Swift orders.

An unfilled Market order does not die with its auction: placement gives it the program's default
max_ts (now + max(30, duration / 2 + 10) s) and it leaves the account at the first slot whose
unix time is past that (tests/sandbox/test_max_ts.py covers the edges)."""

from __future__ import annotations

import requests
from solders.keypair import Keypair

from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    HTTP_TIMEOUT,
    auction_around,
    current_slot,
    faucet,
    fetch_user,
    hash_status,
    oracle_price,
    order_params,
    perp_base,
    post_order,
    signed_order,
)


def _liquidity(url: str, mode: str, fraction: float = 0.5, market_index: int | None = 0) -> None:
    resp = requests.post(f"{url}/sandbox/liquidity",
                         json={"market_index": market_index, "mode": mode,
                               "fraction": fraction}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text


def _first_slot_past(sandbox: SandboxServer, max_ts: int) -> int:
    """The first slot whose chain unix time is past ``max_ts``."""
    slot = sandbox.exchange.slot
    while sandbox.exchange.clock.unix_ts_at(slot) <= max_ts:
        slot += 1
    return slot


def _submit(url: str, kp: Keypair, base: int, duration: int = 20) -> tuple[int, bytes]:
    params = order_params(direction="long", base=base,
                          auction=auction_around(oracle_price(url), "long", duration=duration))
    slot = current_slot(url)
    body, sig = signed_order(kp, params, slot)
    assert post_order(url, body).status_code == 200
    return slot, sig


def test_partial_liquidity_fills_fraction_and_rest_expires(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    _liquidity(url, "partial", 0.25)
    slot, sig = _submit(url, kp, base=1_000_000_000, duration=20)
    sandbox.step()
    order_id = int(hash_status(url, sig).text)
    sandbox.step(slot + 20 - current_slot(url))  # to the last auction slot
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 250_000_000
    resting = [o for o in user.orders if o.order_id == order_id]
    assert resting and resting[0].base_asset_amount_filled == 250_000_000
    sandbox.step(2)  # auction over: the remainder rests (no maker budget left) until max_ts
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 250_000_000
    (resting,) = [o for o in user.orders if o.order_id == order_id]
    sandbox.step(_first_slot_past(sandbox, resting.max_ts) - current_slot(url))
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 250_000_000
    assert all(o.order_id != order_id for o in user.orders)


def test_no_liquidity_never_fills_and_expires(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    _liquidity(url, "none")
    slot, sig = _submit(url, kp, base=100_000_000, duration=10)
    sandbox.step()
    order_id = int(hash_status(url, sig).text)
    assert any(o.order_id == order_id for o in fetch_user(url, kp.pubkey()).orders)
    sandbox.step(slot + 11 - current_slot(url))  # auction over: still open (default max_ts)
    user = fetch_user(url, kp.pubkey())
    (resting,) = [o for o in user.orders if o.order_id == order_id]
    sandbox.step(_first_slot_past(sandbox, resting.max_ts) - current_slot(url))
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 0
    assert all(o.order_id != order_id for o in user.orders)
    stats = requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()
    assert stats["by_authority"][str(kp.pubkey())]["orders_expired"] == 1


def test_liquidity_is_per_market(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    _liquidity(url, "none", market_index=1)  # BTC dry, SOL (default) full
    _submit(url, kp, base=100_000_000, duration=10)
    sandbox.step(12)
    assert perp_base(fetch_user(url, kp.pubkey())) == 100_000_000


def test_makers_wait_for_a_good_enough_auction_price(sandbox: SandboxServer) -> None:
    """With a strict maker edge the fill comes later in the auction, at a higher price."""
    url = sandbox.url
    sandbox.exchange.config.maker_edge_bps = 5.0
    requests.post(f"{url}/sandbox/oracle", json={"market_index": 0, "price": 100.0,
                                                 "freeze": True}, timeout=HTTP_TIMEOUT)
    kp = Keypair()
    faucet(url, kp)
    _submit(url, kp, base=100_000_000, duration=20)  # 99.90 -> 100.10
    sandbox.step(10)  # auction price 100.00: below oracle + 5 bps
    assert perp_base(fetch_user(url, kp.pubkey())) == 0
    sandbox.step(10)
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 100_000_000
    pos = next(p for p in user.perp_positions if p.market_index == 0)
    assert -pos.quote_entry_amount >= 10_005_000  # >= 100.05 * 0.1


def test_oracle_order_auction_is_relative_to_the_oracle(sandbox: SandboxServer) -> None:
    url = sandbox.url
    requests.post(f"{url}/sandbox/oracle", json={"market_index": 0, "price": 200.0,
                                                 "freeze": True}, timeout=HTTP_TIMEOUT)
    kp = Keypair()
    faucet(url, kp)
    # short, offsets +0.20 -> -0.20 around the oracle over 10 slots
    params = order_params(direction="short", base=100_000_000, order_type="oracle",
                          auction=(10, 200_000, -200_000))
    body, _ = signed_order(kp, params, current_slot(url))
    assert post_order(url, body).status_code == 200
    sandbox.step(3)
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == -100_000_000
    pos = next(p for p in user.perp_positions if p.market_index == 0)
    assert 19_980_000 <= pos.quote_entry_amount <= 20_020_000  # 0.1 SOL at 200 +/- 0.20


def test_limit_order_max_ts_expiry(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    params = order_params(order_type="limit", base=100_000_000, price=oracle_price(url) // 2)
    params.max_ts = sandbox.exchange.clock.unix_ts() + 4  # 10 slots of 400 ms
    body, sig = signed_order(kp, params, current_slot(url) + 5)
    assert post_order(url, body).status_code == 200
    sandbox.step()
    order_id = int(hash_status(url, sig).text)
    assert any(o.order_id == order_id for o in fetch_user(url, kp.pubkey()).orders)
    sandbox.step(12)
    assert all(o.order_id != order_id for o in fetch_user(url, kp.pubkey()).orders)
