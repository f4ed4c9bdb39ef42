"""max_ts as the program honours it (protocol-v2 place_perp_order, fill_perp_order,
expire_orders): skipped at placement when already past, no fill and removal at the first slot
whose unix time is past it, and a default max_ts for Market orders that carry none, which keeps
them alive (and fillable at their limit price) after their auction."""

from __future__ import annotations

from typing import Any

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
    order_params,
    perp_base,
    post_order,
    signed_order,
)

PRICE = 100_000_000  # oracle pinned at $100


def _pin_oracle(url: str) -> None:
    resp = requests.post(f"{url}/sandbox/oracle", json={"market_index": 0, "price": 100.0,
                                                        "freeze": True}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200


def _faults(url: str, **changes: Any) -> None:
    resp = requests.post(f"{url}/sandbox/faults", json=changes, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text


def _stats(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()


def _first_slot_past(sandbox: SandboxServer, max_ts: int) -> int:
    slot = sandbox.exchange.slot
    while sandbox.exchange.clock.unix_ts_at(slot) <= max_ts:
        slot += 1
    return slot


def _step_to(sandbox: SandboxServer, slot: int) -> None:
    assert slot >= sandbox.exchange.slot
    sandbox.step(slot - sandbox.exchange.slot)


def _post(url: str, kp: Keypair, params: Any, uuid: bytes = b"maxts001") -> bytes:
    body, sig = signed_order(kp, params, current_slot(url), uuid)
    assert post_order(url, body).status_code == 200
    return sig


def _open_order(url: str, kp: Keypair, order_id: int) -> Any | None:
    found = [o for o in fetch_user(url, kp.pubkey()).orders if o.order_id == order_id]
    return found[0] if found else None


def test_order_with_max_ts_expires_at_the_first_slot_past_it(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _pin_oracle(url)
    kp = Keypair()
    faucet(url, kp)
    _faults(url, swift_makers_paused=True)  # nobody fills: only max_ts can end the order
    params = order_params(base=100_000_000, auction=auction_around(PRICE, "long", duration=50))
    params.max_ts = sandbox.exchange.clock.unix_ts() + 6  # ~15 slots: inside the auction
    sig = _post(url, kp, params)
    sandbox.step()
    order_id = int(hash_status(url, sig).text)
    assert _open_order(url, kp, order_id).max_ts == params.max_ts
    expiry_slot = _first_slot_past(sandbox, params.max_ts)
    _step_to(sandbox, expiry_slot - 1)  # unix time == max_ts: still alive
    assert sandbox.exchange.clock.unix_ts() == params.max_ts
    assert _open_order(url, kp, order_id) is not None
    sandbox.step()
    assert _open_order(url, kp, order_id) is None
    assert _stats(url)["by_authority"][str(kp.pubkey())]["orders_expired"] == 1


def test_no_fill_once_chain_time_is_past_max_ts(sandbox: SandboxServer) -> None:
    """Makers coming back at the expiry slot find nothing to fill; one slot earlier they do."""
    url = sandbox.url
    _pin_oracle(url)
    for kp, slots_before_expiry, filled in ((Keypair(), 1, 0), (Keypair(), 2, 100_000_000)):
        faucet(url, kp)
        _faults(url, swift_makers_paused=True)
        params = order_params(base=100_000_000, auction=auction_around(PRICE, "long", duration=50))
        params.max_ts = sandbox.exchange.clock.unix_ts() + 4
        _post(url, kp, params)
        sandbox.step()
        expiry_slot = _first_slot_past(sandbox, params.max_ts)
        _step_to(sandbox, expiry_slot - slots_before_expiry)
        _faults(url, swift_makers_paused=False)
        _step_to(sandbox, expiry_slot)
        assert perp_base(fetch_user(url, kp.pubkey())) == filled
        assert all(o.order_id == 0 for o in fetch_user(url, kp.pubkey()).orders)
    by_authority = _stats(url)["by_authority"]
    assert sum(v.get("orders_expired", 0) for v in by_authority.values()) == 1


def test_max_ts_already_past_is_never_placed(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _pin_oracle(url)
    past, now = Keypair(), Keypair()
    for kp in (past, now):
        faucet(url, kp)
    placement_ts = sandbox.exchange.clock.unix_ts_at(sandbox.exchange.slot + 1)
    params = order_params(base=100_000_000, auction=auction_around(PRICE, "long", duration=20))
    params.max_ts = placement_ts - 1
    sig_past = _post(url, past, params)
    params.max_ts = placement_ts  # max_ts == now is placed ("max_ts < now" skips)
    sig_now = _post(url, now, params)
    sandbox.step()
    assert hash_status(url, sig_past).status_code == 404
    assert hash_status(url, sig_now).status_code == 200
    assert all(o.order_id == 0 for o in fetch_user(url, past.pubkey()).orders)
    stats = _stats(url)["by_authority"]
    assert stats[str(past.pubkey())]["swift_not_placed_max_ts_passed"] == 1
    assert "swift_orders_placed" not in stats[str(past.pubkey())]
    assert stats[str(now.pubkey())]["swift_orders_placed"] == 1
    sandbox.step(5)
    assert perp_base(fetch_user(url, past.pubkey())) == 0


def test_default_max_ts_of_a_market_order(sandbox: SandboxServer) -> None:
    """now + max(30, auction_duration / 2 + 10): 30 s for 20 slots, 60 s for 100 slots."""
    url = sandbox.url
    _pin_oracle(url)
    _faults(url, swift_makers_paused=True)
    expected = {}
    for duration in (20, 100):
        kp = Keypair()
        faucet(url, kp)
        auction = auction_around(PRICE, "long", duration=duration)
        params = order_params(base=100_000_000, auction=auction)
        expected[duration] = (kp, _post(url, kp, params, f"dflt{duration:04d}".encode()))
    sandbox.step()
    placed_at = sandbox.exchange.clock.unix_ts()
    for duration, (kp, sig) in expected.items():
        order = _open_order(url, kp, int(hash_status(url, sig).text))
        assert order.max_ts == placed_at + max(30, duration // 2 + 10)


def test_market_order_without_max_ts_survives_its_auction_and_fills_after_it(
        sandbox: SandboxServer) -> None:
    url = sandbox.url
    _pin_oracle(url)
    no_price, priced = Keypair(), Keypair()
    for kp in (no_price, priced):
        faucet(url, kp)
    _faults(url, swift_makers_paused=True)  # no maker during the auction
    auction = auction_around(PRICE, "long", duration=10)
    sigs = {}
    for kp, limit in ((no_price, 0), (priced, 100_300_000)):
        params = order_params(base=100_000_000, auction=auction, price=limit)
        slot = current_slot(url)
        sigs[kp.pubkey()] = _post(url, kp, params)
    sandbox.step()
    ids = {k: int(hash_status(url, s).text) for k, s in sigs.items()}
    _step_to(sandbox, slot + 12)  # the auction (slots slot..slot+10) is over
    for kp in (no_price, priced):
        assert _open_order(url, kp, ids[kp.pubkey()]) is not None
        assert perp_base(fetch_user(url, kp.pubkey())) == 0
    _faults(url, swift_makers_paused=False)
    sandbox.step()
    fills = {f["authority"]: f for f in requests.get(f"{url}/sandbox/fills",
                                                    timeout=HTTP_TIMEOUT).json()["fills"]}
    # the order's own price, else the program's fallback: oracle + 1/200 with >= 10 s to live
    assert fills[str(priced.pubkey())]["price"] == 100_300_000
    assert fills[str(no_price.pubkey())]["price"] == PRICE + PRICE // 200
    for kp in (no_price, priced):
        assert fills[str(kp.pubkey())]["slot"] == slot + 13
        assert perp_base(fetch_user(url, kp.pubkey())) == 100_000_000
        assert _open_order(url, kp, ids[kp.pubkey()]) is None
