"""Swift /orders acceptance, rejection and placement against the sandbox over HTTP."""

from __future__ import annotations

import requests
from solders.keypair import Keypair

from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    HTTP_TIMEOUT,
    SOL_MIN,
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


def _market_order(url: str, kp: Keypair, direction: str = "long", base: int = 100_000_000,
                  uuid: bytes = b"abcdefgh", slot: int | None = None,
                  duration: int = 50) -> tuple[dict, bytes]:
    params = order_params(direction=direction, base=base,
                          auction=auction_around(oracle_price(url), direction,
                                                 duration=duration))
    return signed_order(kp, params, current_slot(url) if slot is None else slot, uuid)


def _step_until(server: SandboxServer, predicate, max_slots: int = 80) -> bool:
    """Step the clock one slot at a time until ``predicate()`` holds (bounded)."""
    for _ in range(max_slots):
        if predicate():
            return True
        server.step()
    return predicate()


def test_signed_order_is_placed_then_filled(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, quote=1_000)
    requests.post(f"{url}/sandbox/faults", json={"makers_paused": True}, timeout=HTTP_TIMEOUT)
    _, start, end = auction_around(oracle_price(url), "long")
    body, sig = _market_order(url, kp, "long", base=200_000_000)

    resp = post_order(url, body)
    assert resp.status_code == 200
    assert resp.json() == {"message": "Order processed"}
    before = hash_status(url, sig)
    assert (before.status_code, before.text) == (404, "not found")

    sandbox.step()
    placed = hash_status(url, sig)
    assert placed.status_code == 200
    order_id = int(placed.text)
    user = fetch_user(url, kp.pubkey())
    open_orders = [o for o in user.orders if o.order_id == order_id]
    assert len(open_orders) == 1
    assert open_orders[0].base_asset_amount == 200_000_000
    assert open_orders[0].base_asset_amount_filled == 0
    assert perp_base(user) == 0

    requests.delete(f"{url}/sandbox/faults", timeout=HTTP_TIMEOUT)
    assert _step_until(sandbox, lambda: perp_base(fetch_user(url, kp.pubkey())) != 0)
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 200_000_000
    pos = next(p for p in user.perp_positions if p.market_index == 0)
    entry_price = -pos.quote_entry_amount * 1_000_000_000 // pos.base_asset_amount
    assert start - 5 <= entry_price <= end + 5  # inside the Dutch auction (+ rounding)
    assert all(o.order_id != order_id for o in user.orders)  # filled orders leave the book
    stats = requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()
    mine = stats["by_authority"][str(kp.pubkey())]
    assert mine["swift_orders_received"] == 1
    assert mine["swift_orders_accepted"] == 1
    assert mine["swift_orders_placed"] == 1
    assert mine["swift_orders_filled"] == 1


def test_short_order_fills_negative_base(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    body, _ = _market_order(url, kp, "short", base=SOL_MIN * 3)
    assert post_order(url, body).status_code == 200
    assert _step_until(sandbox, lambda: perp_base(fetch_user(url, kp.pubkey())) != 0)
    assert perp_base(fetch_user(url, kp.pubkey())) == -SOL_MIN * 3


def test_bad_signature_is_rejected(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp, other = Keypair(), Keypair()
    faucet(url, kp)
    body, _ = _market_order(url, other)
    body["taker_authority"] = str(kp.pubkey())
    resp = post_order(url, body)
    assert resp.status_code == 400
    assert resp.json()["message"] == "Error verifying signed message"


def test_signature_over_raw_bytes_is_rejected(sandbox: SandboxServer) -> None:
    """The signature must cover the ASCII hex string, not the borsh bytes."""
    import base64

    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    body, _ = _market_order(url, kp)
    raw = bytes.fromhex(body["message"])
    body["signature"] = base64.b64encode(bytes(kp.sign_message(raw))).decode()
    resp = post_order(url, body)
    assert (resp.status_code, resp.json()["message"]) == (400, "Error verifying signed message")


def test_slot_too_old(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    sandbox.step(600)
    body, _ = _market_order(url, kp, slot=current_slot(url) - 501)
    resp = post_order(url, body)
    assert resp.status_code == 400
    assert resp.json() == {"message": "Order slot too old", "error": "Order slot too old"}
    ok, _ = _market_order(url, kp, slot=current_slot(url) - 500, uuid=b"slot-500")
    assert post_order(url, ok).status_code == 200


def test_market_order_without_auction_is_invalid(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    body, _ = signed_order(kp, order_params(base=SOL_MIN), current_slot(url))
    resp = post_order(url, body)
    assert resp.status_code == 400
    assert resp.json() == {"message": "Invalid order", "error": "InvalidOrderAuction"}


def test_spot_market_type_is_invalid(sandbox: SandboxServer) -> None:
    from driftpy.types import MarketType

    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    params = order_params(base=SOL_MIN, auction=auction_around(oracle_price(url), "long"))
    params.market_type = MarketType.Spot()
    body, _ = signed_order(kp, params, current_slot(url))
    assert post_order(url, body).json() == {"message": "Invalid order",
                                            "error": "InvalidOrderMarketType"}


def test_reversed_auction_is_invalid(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    duration, start, end = auction_around(oracle_price(url), "long")
    params = order_params(direction="long", base=SOL_MIN, auction=(duration, end, start))
    body, _ = signed_order(kp, params, current_slot(url))
    resp = post_order(url, body)
    assert resp.json() == {"message": "Invalid order", "error": "InvalidOrderAuction"}


def test_limit_order_without_auction_is_accepted(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    params = order_params(order_type="limit", base=SOL_MIN, price=oracle_price(url) // 2)
    # No auction: max_slot == slot, so sign a few slots ahead as the UI does.
    body, sig = signed_order(kp, params, current_slot(url) + 5)
    assert post_order(url, body).status_code == 200
    sandbox.step()
    assert hash_status(url, sig).status_code == 200
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 0  # far below the oracle: rests unfilled
    assert any(o.base_asset_amount == SOL_MIN for o in user.orders if o.order_id)


def test_size_below_min_order_size(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    body, _ = _market_order(url, kp, base=SOL_MIN - 1)
    resp = post_order(url, body)
    assert resp.status_code == 400
    assert resp.json() == {"message": "Invalid order", "error": "InvalidOrderSizeTooSmall"}


def test_unknown_user_is_404(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    body, _ = _market_order(url, kp)
    resp = post_order(url, body)
    assert resp.status_code == 404
    assert resp.json()["message"] == "Invalid order"
    assert resp.json()["error"].startswith("unable to fetch user")


def test_insufficient_collateral(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, quote=10)  # $10 at 20x covers $200 of SOL, not 10 SOL (~$1500)
    body, _ = _market_order(url, kp, base=10_000_000_000)
    resp = post_order(url, body)
    assert resp.status_code == 400
    assert resp.json() == {"message": "Invalid order",
                           "error": "invalid order. error code: Drift(InsufficientCollateral)"}


def test_without_signed_msg_account_accepted_but_never_placed(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, signed_msg_user_orders=False)
    body, sig = _market_order(url, kp)
    resp = post_order(url, body)
    assert (resp.status_code, resp.json()) == (200, {"message": "Order processed"})
    sandbox.step(60)
    assert hash_status(url, sig).status_code == 404
    assert perp_base(fetch_user(url, kp.pubkey())) == 0
    stats = requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()
    assert stats["by_authority"][str(kp.pubkey())]["swift_not_placed_no_signed_msg_account"] == 1


def test_repeated_uuid_is_silently_skipped(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    requests.post(f"{url}/sandbox/faults", json={"makers_paused": True}, timeout=HTTP_TIMEOUT)
    first, sig1 = _market_order(url, kp, base=SOL_MIN, uuid=b"same-one")
    second, sig2 = _market_order(url, kp, base=SOL_MIN * 2, uuid=b"same-one")
    assert post_order(url, first).status_code == 200
    sandbox.step()
    assert post_order(url, second).status_code == 200
    sandbox.step(2)
    assert hash_status(url, sig1).status_code == 200
    assert hash_status(url, sig2).status_code == 404


def test_max_slot_in_the_past_is_never_placed(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    sandbox.step(200)
    body, sig = _market_order(url, kp, slot=current_slot(url) - 100, duration=50)
    assert post_order(url, body).status_code == 200  # not too old for the server
    sandbox.step(3)
    assert hash_status(url, sig).status_code == 404
    assert perp_base(fetch_user(url, kp.pubkey())) == 0


def test_malformed_bodies(sandbox: SandboxServer) -> None:
    url = sandbox.url
    resp = requests.post(f"{url}/orders", data="{}", timeout=HTTP_TIMEOUT,
                         headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    resp = requests.post(f"{url}/orders", json={"message": "zz", "signature": "AA=="},
                         timeout=HTTP_TIMEOUT)
    assert resp.status_code == 422
    resp = requests.get(f"{url}/confirmation/hash-status", params={"hash": ""},
                        timeout=HTTP_TIMEOUT)
    assert (resp.status_code, resp.text) == (400, "Missing hash parameter")


def test_health_endpoints(sandbox: SandboxServer) -> None:
    for path in ("/health", "/confirmation/health"):
        resp = requests.get(f"{sandbox.url}{path}", timeout=HTTP_TIMEOUT)
        assert (resp.status_code, resp.text) == (200, "ok")
