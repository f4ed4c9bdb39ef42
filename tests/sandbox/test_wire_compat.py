"""Wire compatibility: public Swift test vectors, delegate signing, hash-status lifetime,
SignedMsgUserOrders capacity and RPC encoding limits."""

from __future__ import annotations

import base64
from hashlib import sha256

import requests
from driftpy.types import SignedMsgOrderParamsDelegateMessage
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    HTTP_TIMEOUT,
    auction_around,
    coder,
    current_slot,
    faucet,
    fetch_user,
    hash_status,
    oracle_price,
    order_params,
    perp_base,
    post_order,
    rpc,
    signed_order,
    user_key,
)

# Request bodies from the public drift-labs/swift test-suite (src/types/messages.rs): real
# client bytes and signatures, used here only as fixed wire vectors.
PUBLIC_AUTHORITY = "4rmhwytmKH1XsgGAUyUUH7U64HS5FtT6gM8HGKAfwcFE"
PUBLIC_ORDER = {
    "market_index": 2,
    "market_type": "perp",
    "message": "c8d5a65e2234f55d0001000080841e00000000000000000000000000020000000000000000013201"
               "abe72e7c000000000162d06c7d00000000000066190816000000005a645349472d634c0000",
    "signature": "LiwPgg6VXxOWfCI/PGQpv2c2PqDs11zgSrqDCOvHq1S0yvE0KZeQa84u7Pb0tanN2KO4Ac8laT7o"
                 "daAyWxRDBA==",
    "taker_authority": PUBLIC_AUTHORITY,
}
PUBLIC_DELEGATE_ORDER = {
    "market_index": 2,
    "market_type": "perp",
    "message": "42656638c7259e230001010080841e00000000000000000000000000020000000000000000013201"
               "bb60507d000000000117c0127c00000000395311d51c1b87fd56c3b5872d1041111e51f399b12d29"
               "1d981a0ea383407295272108160000000073386c754a4c5a650000",
    "signature": "9G8luwFfeAc25HwXCgaUjrKv6yJHcMFDq4Z4uPXqom5mhwZ63YU5g7p07Kxe/AKSt5A/9OPDh3nN"
                 "/c9IHjkCDA==",
    "taker_pubkey": PUBLIC_AUTHORITY,
    "signing_authority": "GiMXQkJXLVjScmQDkoLJShBJpTh9SDPvT2AZQq8NyEBf",
}


def test_public_vector_verifies_and_is_placed_for_a_funded_user(sandbox: SandboxServer) -> None:
    url = sandbox.url
    resp = post_order(url, PUBLIC_ORDER)
    assert resp.status_code == 404  # signature verified and message decoded; no such user yet
    assert resp.json()["error"].startswith("unable to fetch user")
    requests.post(f"{url}/sandbox/faucet", json={"authority": PUBLIC_AUTHORITY, "quote": 100},
                  timeout=HTTP_TIMEOUT)
    assert post_order(url, PUBLIC_ORDER).json() == {"message": "Order processed"}
    sandbox.step()
    sig = base64.b64decode(PUBLIC_ORDER["signature"])
    assert hash_status(url, sig).status_code == 200
    tampered = dict(PUBLIC_ORDER, message=PUBLIC_ORDER["message"][:-2] + "01")
    assert post_order(url, tampered).json()["message"] == "Error verifying signed message"


def test_public_delegate_vector_verifies(sandbox: SandboxServer) -> None:
    resp = post_order(sandbox.url, PUBLIC_DELEGATE_ORDER)
    # verified with signing_authority; the taker_pubkey names a user account we do not have
    assert resp.status_code == 404


def test_delegate_signed_order_is_placed(sandbox: SandboxServer) -> None:
    url = sandbox.url
    owner, delegate = Keypair(), Keypair()
    faucet(url, owner, delegate=str(delegate.pubkey()))
    params = order_params(base=100_000_000, auction=auction_around(oracle_price(url), "long"))
    msg = SignedMsgOrderParamsDelegateMessage(
        signed_msg_order_params=params, slot=current_slot(url), uuid=b"delegat1",
        taker_pubkey=list(bytes(user_key(owner.pubkey()))), take_profit_order_params=None,
        stop_loss_order_params=None, max_margin_ratio=None, builder_idx=None,
        builder_fee_tenth_bps=None)
    disc = sha256(b"global:SignedMsgOrderParamsDelegateMessage").digest()[:8]
    hex_msg = (disc + coder().types.encode("SignedMsgOrderParamsDelegateMessage", msg)).hex()
    sig = bytes(delegate.sign_message(hex_msg.encode()))
    body = {"market_index": 0, "market_type": "perp", "message": hex_msg,
            "signature": base64.b64encode(sig).decode(),
            "taker_authority": str(owner.pubkey()),
            "signing_authority": str(delegate.pubkey())}
    assert post_order(url, body).status_code == 200
    sandbox.step(5)
    assert hash_status(url, sig).status_code == 200
    assert perp_base(fetch_user(url, owner.pubkey())) == 100_000_000


def test_hash_status_entries_expire_after_180_seconds(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    body, sig = signed_order(kp, order_params(
        base=100_000_000, auction=auction_around(oracle_price(url), "long")), current_slot(url))
    assert post_order(url, body).status_code == 200
    sandbox.step()
    assert hash_status(url, sig).status_code == 200
    sandbox.step(180_000 // 400 - 1)
    assert hash_status(url, sig).status_code == 200
    sandbox.step(2)
    assert hash_status(url, sig).status_code == 404


def test_signed_msg_account_capacity_caps_orders_in_flight(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, num_orders=1)
    requests.post(f"{url}/sandbox/faults", json={"makers_paused": True}, timeout=HTTP_TIMEOUT)
    auction = auction_around(oracle_price(url), "long", duration=20)
    first, sig1 = signed_order(kp, order_params(base=100_000_000, auction=auction),
                               current_slot(url), b"cap-0001")
    second, sig2 = signed_order(kp, order_params(base=100_000_000, auction=auction),
                                current_slot(url), b"cap-0002")
    assert post_order(url, first).status_code == 200
    assert post_order(url, second).status_code == 200
    sandbox.step()
    assert hash_status(url, sig1).status_code == 200
    assert hash_status(url, sig2).status_code == 404
    stats = requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()
    assert stats["totals"]["swift_not_placed_signed_msg_account_full"] == 1


def test_base58_account_data_limit(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    out = rpc(url, "getAccountInfo", [str(user_key(kp.pubkey()))])
    assert out["error"]["code"] == -32600
    missing = rpc(url, "getAccountInfo", [str(Pubkey.new_unique())])
    assert missing["result"]["value"] is None
