"""The SignedMsgUserOrders account: without it Swift accepts orders that are never placed.

PDA ``["SIGNED_MSG", authority]`` under the venue's program id. It must exist before Swift
orders can be placed (the server answers 200 and the keeper silently fails), and its size caps
the Swift orders in flight per authority (slots free ~10 slots after an auction ends). 1..128
slots; the TypeScript SDK uses 8.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from anchorpy import Context
from driftpy.addresses import get_signed_msg_user_account_public_key
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import RENT

from venue.drift_program import drift_program
from venue.legacy_tx import DEFAULT_BUDGET, BuiltTx, ComputeBudget, build_tx
from venue.profiles import VenueProfile
from venue.rpc_client import SolanaRpc

DEFAULT_NUM_ORDERS = 8
MAX_NUM_ORDERS = 128
DISCRIMINATOR = hashlib.sha256(b"account:SignedMsgUserOrders").digest()[:8]
_HEADER = struct.Struct("<8s32sII")  # discriminator, authority, padding, len
_ENTRY = struct.Struct("<8sQII")  # uuid, max_slot, order_id, padding


@dataclass(frozen=True)
class SignedMsgOrderRecord:
    """One occupied slot: which uuid became which on-chain order id, valid until max_slot."""

    uuid: bytes
    max_slot: int
    order_id: int


def signed_msg_user_orders_size(num_orders: int = DEFAULT_NUM_ORDERS) -> int:
    """Bytes of the account with `num_orders` slots (what its rent is charged for)."""
    return _HEADER.size + num_orders * _ENTRY.size


def signed_msg_user_orders_address(profile: VenueProfile, authority: Pubkey) -> Pubkey:
    """The SignedMsgUserOrders PDA for ``authority``."""
    return get_signed_msg_user_account_public_key(profile.program_id, authority)


def signed_msg_user_orders_exists(rpc: SolanaRpc, profile: VenueProfile,
                                  authority: Pubkey) -> bool:
    """True if the PDA exists and is owned by the venue program (RPC errors propagate)."""
    _slot, account = rpc.get_account_info(signed_msg_user_orders_address(profile, authority))
    return account is not None and account.owner == profile.program_id


def initialize_signed_msg_user_orders_ix(profile: VenueProfile, authority: Pubkey,
                                         num_orders: int = DEFAULT_NUM_ORDERS,
                                         payer: Pubkey | None = None) -> Instruction:
    """initializeSignedMsgUserOrders(num_orders); the payer (default authority) signs."""
    if not 1 <= num_orders <= MAX_NUM_ORDERS:
        raise ValueError(f"num_orders must be in 1..{MAX_NUM_ORDERS}")
    program = drift_program(profile.program_id)
    return program.instruction["initialize_signed_msg_user_orders"](
        num_orders,
        ctx=Context(accounts={
            "signed_msg_user_orders": signed_msg_user_orders_address(profile, authority),
            "authority": authority,
            "payer": payer or authority,
            "rent": RENT,
            "system_program": SYSTEM_PROGRAM_ID,
        }),
    )


def initialize_signed_msg_user_orders_tx(profile: VenueProfile, authority: Keypair,
                                         blockhash: Hash,
                                         num_orders: int = DEFAULT_NUM_ORDERS,
                                         budget: ComputeBudget = DEFAULT_BUDGET) -> BuiltTx:
    """Signed transaction creating the authority's SignedMsgUserOrders account (CLI helper)."""
    ix = initialize_signed_msg_user_orders_ix(profile, authority.pubkey(), num_orders)
    return build_tx(authority, [ix], blockhash, budget)


def decode_signed_msg_user_orders(data: bytes) -> tuple[Pubkey, list[SignedMsgOrderRecord]]:
    """(authority, occupied slots) from the account bytes (fixed header + 24-byte entries).

    This is a second, independent way to learn that a Swift order was placed (the first being
    hash-status): the program records uuid -> order id here when it places the order. Slots are
    recycled ~10 slots after ``max_slot``, so look before then.
    """
    if len(data) < _HEADER.size or data[:8] != DISCRIMINATOR:
        raise ValueError("not a SignedMsgUserOrders account")
    _disc, authority, _pad, count = _HEADER.unpack_from(data)
    if _HEADER.size + count * _ENTRY.size > len(data):
        raise ValueError("SignedMsgUserOrders length exceeds account size")
    records = []
    for i in range(count):
        uuid, max_slot, order_id, _ = _ENTRY.unpack_from(data, _HEADER.size + i * _ENTRY.size)
        if order_id != 0 or uuid != bytes(8):
            records.append(SignedMsgOrderRecord(uuid, max_slot, order_id))
    return Pubkey.from_bytes(authority), records


def find_order_by_uuid(data: bytes, uuid: bytes) -> SignedMsgOrderRecord | None:
    """The record for ``uuid`` if the program has placed that Swift order (and not evicted it)."""
    _authority, records = decode_signed_msg_user_orders(data)
    return next((r for r in records if r.uuid == uuid), None)
