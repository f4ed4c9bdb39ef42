"""Client-side builders for sandbox tests, written against driftpy/anchorpy/solders directly
(independent of the sandbox's own codec module and of venue/)."""

from __future__ import annotations

import base64
import pathlib
from functools import lru_cache
from hashlib import sha256
from typing import Any

import driftpy
import requests
from anchorpy.coder.coder import Coder
from anchorpy.program.common import NamedInstruction
from anchorpy_core.idl import Idl
from driftpy import addresses
from driftpy.constants.config import DRIFT_PROGRAM_ID
from driftpy.decode.user import decode_user
from driftpy.types import (
    MarketType,
    OrderParams,
    OrderType,
    PositionDirection,
    SignedMsgOrderParamsMessage,
)
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

HTTP_TIMEOUT = 5.0
SOL_MARKET = 0
SOL_MIN = 10_000_000  # 0.01 SOL, the sandbox's SOL-PERP min order size
SYSVAR_RENT = Pubkey.from_string("SysvarRent111111111111111111111111111111111")
SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
USDC_MINT = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
MSG_DISC = sha256(b"global:SignedMsgOrderParamsMessage").digest()[:8]


@lru_cache(maxsize=1)
def coder() -> Coder:
    """anchorpy coder over driftpy's IDL."""
    path = pathlib.Path(str(next(iter(driftpy.__path__)))) / "idl" / "drift.json"
    return Coder(Idl.from_json(path.read_text()))


def order_params(*, direction: str = "long", base: int = 100_000_000, market_index: int = 0,
                 order_type: str = "market", price: int = 0, reduce_only: bool = False,
                 auction: tuple[int, int, int] | None = None) -> OrderParams:
    """driftpy OrderParams; ``auction`` = (duration, start, end)."""
    otype = {"market": OrderType.Market, "limit": OrderType.Limit,
             "oracle": OrderType.Oracle}[order_type]()
    p = OrderParams(
        order_type=otype, market_type=MarketType.Perp(),
        direction=PositionDirection.Long() if direction == "long" else PositionDirection.Short(),
        base_asset_amount=base, market_index=market_index, price=price,
        reduce_only=reduce_only,
    )
    if auction is not None:
        p.auction_duration, p.auction_start_price, p.auction_end_price = auction
    return p


def auction_around(oracle: int, direction: str, bps: int = 10, duration: int = 50,
                   ) -> tuple[int, int, int]:
    """Public-example auction: oracle -/+ bps over ``duration`` slots (long start <= end)."""
    lo, hi = oracle * (10_000 - bps) // 10_000, oracle * (10_000 + bps) // 10_000
    return (duration, lo, hi) if direction == "long" else (duration, hi, lo)


def signed_order(kp: Keypair, params: OrderParams, slot: int, uuid: bytes = b"abcdefgh",
                 sub_account_id: int = 0) -> tuple[dict[str, Any], bytes]:
    """The POST /orders body and the raw signature bytes."""
    msg = SignedMsgOrderParamsMessage(
        signed_msg_order_params=params, sub_account_id=sub_account_id, slot=slot, uuid=uuid,
        take_profit_order_params=None, stop_loss_order_params=None, max_margin_ratio=None,
        builder_idx=None, builder_fee_tenth_bps=None,
    )
    raw = MSG_DISC + coder().types.encode("SignedMsgOrderParamsMessage", msg)
    hex_msg = raw.hex()
    sig = bytes(kp.sign_message(hex_msg.encode()))
    body = {"market_index": params.market_index, "market_type": "perp", "message": hex_msg,
            "signature": base64.b64encode(sig).decode(), "taker_authority": str(kp.pubkey())}
    return body, sig


def hash_of(sig: bytes) -> str:
    """hash-status key: base64(sha256(signature))."""
    return base64.b64encode(sha256(sig).digest()).decode()


def post_order(url: str, body: dict[str, Any]) -> requests.Response:
    """POST /orders."""
    return requests.post(f"{url}/orders", json=body, timeout=HTTP_TIMEOUT)


def hash_status(url: str, sig: bytes) -> requests.Response:
    """GET /confirmation/hash-status with a properly url-encoded hash."""
    return requests.get(f"{url}/confirmation/hash-status", params={"hash": hash_of(sig)},
                        timeout=HTTP_TIMEOUT)


def rpc(url: str, method: str, params: list[Any] | None = None) -> dict[str, Any]:
    """One JSON-RPC call; returns the whole response object."""
    resp = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                    "params": params or []}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def faucet(url: str, kp: Keypair, quote: float = 1_000.0, **extra: Any) -> dict[str, Any]:
    """POST /sandbox/faucet."""
    resp = requests.post(f"{url}/sandbox/faucet",
                         json={"authority": str(kp.pubkey()), "quote": quote, **extra},
                         timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def oracle_price(url: str, market_index: int = SOL_MARKET) -> int:
    """Current oracle price from /sandbox/oracle."""
    resp = requests.get(f"{url}/sandbox/oracle", params={"market_index": market_index},
                        timeout=HTTP_TIMEOUT)
    return int(resp.json()["prices"][str(market_index)]["price"])


def current_slot(url: str) -> int:
    """getSlot."""
    return int(rpc(url, "getSlot")["result"])


def user_key(authority: Pubkey, sub: int = 0) -> Pubkey:
    """User PDA via driftpy."""
    return addresses.get_user_account_public_key(DRIFT_PROGRAM_ID, authority, sub)


def fetch_user(url: str, authority: Pubkey) -> Any:
    """getAccountInfo of the User account, decoded with driftpy.decode.user (None if absent)."""
    value = rpc(url, "getAccountInfo", [str(user_key(authority)),
                                        {"encoding": "base64"}])["result"]["value"]
    if value is None:
        return None
    assert value["owner"] == str(DRIFT_PROGRAM_ID)
    return decode_user(base64.b64decode(value["data"][0]))


def perp_base(user: Any, market_index: int = SOL_MARKET) -> int:
    """base_asset_amount of a market's perp position (0 when none)."""
    for pos in user.perp_positions:
        if pos.market_index == market_index and pos.base_asset_amount != 0:
            return pos.base_asset_amount
    return 0


def drift_ix(name: str, args: dict[str, Any], accounts: list[AccountMeta]) -> Instruction:
    """A Drift instruction encoded with anchorpy's instruction coder."""
    data = coder().instruction.build(NamedInstruction(name=name, data=args))
    return Instruction(DRIFT_PROGRAM_ID, data, accounts)


def state_key() -> Pubkey:
    """The Drift State PDA."""
    return addresses.get_state_public_key(DRIFT_PROGRAM_ID)


def place_and_take_ix(kp: Keypair, params: OrderParams,
                      success_condition: int | None = None) -> Instruction:
    """placeAndTakePerpOrder for the keypair's sub-account 0."""
    auth = kp.pubkey()
    return drift_ix("place_and_take_perp_order",
                    {"params": params, "success_condition": success_condition}, [
                        AccountMeta(state_key(), False, False),
                        AccountMeta(user_key(auth), False, True),
                        AccountMeta(addresses.get_user_stats_account_public_key(
                            DRIFT_PROGRAM_ID, auth), False, True),
                        AccountMeta(auth, True, False),
                    ])


def build_tx(url: str, payer: Keypair, ixs: list[Instruction],
             blockhash: Hash | None = None) -> str:
    """A signed v0 transaction as base64, using the sandbox's latest blockhash."""
    if blockhash is None:
        value = rpc(url, "getLatestBlockhash")["result"]["value"]
        blockhash = Hash.from_string(value["blockhash"])
    msg = MessageV0.try_compile(payer.pubkey(), ixs, [], blockhash)
    tx = VersionedTransaction(msg, [payer])
    return base64.b64encode(bytes(tx)).decode()


def send_tx(url: str, tx_b64: str, skip_preflight: bool = False) -> dict[str, Any]:
    """sendTransaction (base64)."""
    return rpc(url, "sendTransaction",
               [tx_b64, {"encoding": "base64", "skipPreflight": skip_preflight}])
