"""A Swift order before it is encoded: its OrderParams, the signed message around them, builders.

Plain integers as the program takes them (prices 1e6, base 1e9); venue.swift_message turns a
message into its wire bytes and signs it. LONG and SHORT (venue.auction) are the directions.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from solders.pubkey import Pubkey

from venue.auction import LONG, SHORT, AuctionConfig, auction_params

# OrderType / MarketType / PostOnlyParam / OrderTriggerCondition variant indices (IDL order).
ORDER_MARKET = 0
ORDER_LIMIT = 1
ORDER_TRIGGER_MARKET = 2
ORDER_TRIGGER_LIMIT = 3
ORDER_ORACLE = 4
MARKET_SPOT = 0
MARKET_PERP = 1
POST_ONLY_NONE = 0
TRIGGER_ABOVE = 0

__all__ = [
    "LONG",
    "MARKET_PERP",
    "SHORT",
    "OrderSpec",
    "SignedMsgOrder",
    "TriggerParams",
    "build_message",
    "limit_order",
    "market_order",
    "new_uuid",
]


@dataclass(frozen=True)
class OrderSpec:
    """The OrderParams inside a signed message, as plain integers (prices 1e6, base 1e9)."""

    order_type: int
    direction: int
    base_asset_amount: int
    market_index: int
    price: int = 0
    reduce_only: bool = False
    market_type: int = MARKET_PERP
    user_order_id: int = 0
    post_only: int = POST_ONLY_NONE
    bit_flags: int = 0
    max_ts: int | None = None
    trigger_price: int | None = None
    trigger_condition: int = TRIGGER_ABOVE
    oracle_price_offset: int | None = None
    auction_duration: int | None = None
    auction_start_price: int | None = None
    auction_end_price: int | None = None


@dataclass(frozen=True)
class TriggerParams:
    """Attached take-profit / stop-loss: trigger price (1e6) and base amount (1e9)."""

    trigger_price: int
    base_asset_amount: int


@dataclass(frozen=True)
class SignedMsgOrder:
    """A whole message. ``taker_pubkey`` set (the taker's User account) = delegate variant."""

    params: OrderSpec
    slot: int
    uuid: bytes
    sub_account_id: int = 0
    taker_pubkey: Pubkey | None = None
    take_profit: TriggerParams | None = None
    stop_loss: TriggerParams | None = None
    max_margin_ratio: int | None = None
    builder_idx: int | None = None
    builder_fee_tenth_bps: int | None = None

    @property
    def is_delegate(self) -> bool:
        """True for SignedMsgOrderParamsDelegateMessage (signed by a delegate)."""
        return self.taker_pubkey is not None


_UUID_ALPHABET = string.ascii_letters + string.digits


def new_uuid() -> bytes:
    """A fresh 8-character ASCII uuid (a repeated uuid is silently skipped by the venue)."""
    return "".join(secrets.choice(_UUID_ALPHABET) for _ in range(8)).encode("ascii")


def market_order(
    *,
    direction: int,
    base_asset_amount: int,
    market_index: int,
    oracle_price: int,
    auction: AuctionConfig,
    reduce_only: bool = False,
    limit_price: int = 0,
    user_order_id: int = 0,
) -> OrderSpec:
    """A perp market order with auction params from the oracle (required by the venue)."""
    ap = auction_params(direction, oracle_price, auction)
    return OrderSpec(
        order_type=ORDER_MARKET,
        direction=direction,
        base_asset_amount=base_asset_amount,
        market_index=market_index,
        price=limit_price,
        reduce_only=reduce_only,
        user_order_id=user_order_id,
        auction_duration=ap.duration,
        auction_start_price=ap.start_price,
        auction_end_price=ap.end_price,
    )


def limit_order(
    *,
    direction: int,
    base_asset_amount: int,
    market_index: int,
    price: int,
    reduce_only: bool = False,
    user_order_id: int = 0,
    max_ts: int | None = None,
    oracle_price: int | None = None,
    auction: AuctionConfig | None = None,
) -> OrderSpec:
    """A perp limit order; an auction is attached only when both oracle and config are given."""
    if price <= 0:
        raise ValueError("limit price must be positive")
    duration = start = end = None
    if auction is not None and oracle_price is not None:
        ap = auction_params(direction, oracle_price, auction)
        duration, start, end = ap.duration, ap.start_price, ap.end_price
    return OrderSpec(
        order_type=ORDER_LIMIT,
        direction=direction,
        base_asset_amount=base_asset_amount,
        market_index=market_index,
        price=price,
        reduce_only=reduce_only,
        user_order_id=user_order_id,
        max_ts=max_ts,
        auction_duration=duration,
        auction_start_price=start,
        auction_end_price=end,
    )


DEFAULT_SLOT_OFFSET = 7  # the Drift UI signs current + 7 for auction orders


def build_message(
    params: OrderSpec,
    current_slot: int,
    *,
    slot_offset: int = DEFAULT_SLOT_OFFSET,
    sub_account_id: int = 0,
    uuid: bytes | None = None,
    taker_user_account: Pubkey | None = None,
) -> SignedMsgOrder:
    """Wrap order params into a message with ``slot = current_slot + slot_offset``.

    The venue rejects slots older than current - 500, and the program silently drops an order
    whose ``slot + auction_duration`` has already passed when a keeper lands it, so the slot
    must come from a fresh RPC read. Pass ``taker_user_account`` (the taker's User account PDA)
    to build the delegate variant; a fresh uuid is drawn unless one is given (reuse a uuid only
    to re-send the same order, so that the program skips the duplicate).
    """
    if current_slot <= 0:
        raise ValueError("current_slot must be a real slot")
    return SignedMsgOrder(
        params=params,
        slot=current_slot + slot_offset,
        uuid=uuid if uuid is not None else new_uuid(),
        sub_account_id=0 if taker_user_account is not None else sub_account_id,
        taker_pubkey=taker_user_account,
    )
