"""Signing a Swift order: its uuid, its auction's length and its `max_ts`, so it dies unfilled.

Orders are signed against the market snapshot they were sized from (one slot and oracle for
every copy of a signal) with `max_ts` at the auction's end, so a placed order that did not fill
in its auction dies on the venue instead of lingering. An order signed after its snapshot's slot
(the tail of a long fan-out, an order that waited for budget) keeps that slot and oracle: its
auction is lengthened by the snapshot's age (`auction_slots_for`), so it still has the
configured auction from the moment it leaves (the program places an order only while slot +
auction duration is not behind the chain, and prices it along the auction from its signed
slot: a late copy joins the signal's price path where it stands, with the same end price).
Only a snapshot older than a u8 auction can reach (~100 s at 400 ms slots) is re-signed at the
current slot before anything leaves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass

import pykka

from actors.messages import SwiftOrder
from actors.venue_state import VenueStateClient
from venue.auction import AuctionConfig
from venue.rpc_client import AllRpcDown, RpcError, RpcTransportError
from venue.snapshot import ChainTime, MarketSnapshot
from venue.swift_message import SignedOrder, build_message, market_order, sign_order

MAX_AUCTION_SLOTS = 255  # auction_duration is a u8 of the signed message
SLOT_GRACE = 3  # reconciliation: slots past max_slot before a recorded order counts as over


@dataclass(frozen=True)
class SignedSwift:
    """A signed order and what its message says: uuid, slot, max_slot and max_ts."""

    signed: SignedOrder
    uuid: str
    slot: int
    max_slot: int
    max_ts: int


def sign(order: SwiftOrder, venue: VenueStateClient, auction: AuctionConfig) -> SignedSwift:
    """The order signed now, against its snapshot unless that is too old to sign at."""
    snap = order.snapshot
    duration = auction_slots_for(snap, venue.now(), auction.duration_slots)
    if duration is None:
        # older than a signed auction can reach: price and sign it against the market as it
        # is now (one read per market per slot, shared), or at least at the current slot when
        # the venue cannot be read
        try:
            snap = venue.snapshot(order.market_index)
        except (RpcError, RpcTransportError, AllRpcDown, pykka.Timeout, ValueError):
            now = venue.now()
            snap = dataclasses.replace(snap, slot=now.slot, unix_ts=now.unix_ts)
        duration = auction.duration_slots
    max_ts = snap.unix_ts + max_ts_offset_s(duration, snap.slot_ms)
    spec = dataclasses.replace(market_order(
        direction=order.direction, base_asset_amount=order.base_amount,
        market_index=order.market_index, oracle_price=snap.market.oracle_price,
        auction=dataclasses.replace(auction, duration_slots=duration),
        reduce_only=order.reduce_only), max_ts=max_ts)
    message = build_message(spec, snap.slot, slot_offset=0, sub_account_id=order.sub_account_id,
                            uuid=uuid_for(order.trade_id, order.attempt))
    return SignedSwift(sign_order(order.signer, message), message.uuid.decode("ascii"),
                       snap.slot, snap.slot + duration, max_ts)


def auction_slots_for(snapshot: MarketSnapshot, now: ChainTime, auction_slots: int) -> int | None:
    """The auction an order signed now at this snapshot's slot carries, so that it still has
    `auction_slots` to be placed and to trade: the snapshot's age plus those (the program
    silently drops an order whose slot + auction duration is behind the chain, and prices it
    along the auction from its signed slot); None once that no longer fits the message's u8
    (the server's own limit, a slot 500 behind, lies further)."""
    duration = snapshot.slots_behind(now) + auction_slots
    return duration if duration <= MAX_AUCTION_SLOTS else None


def max_ts_offset_s(duration_slots: int, slot_ms: float) -> int:
    """Seconds from the signed slot's unix time to the order's `max_ts`: the last whole second
    that starts within the auction. The chain's clock (whole seconds) then passes `max_ts`
    within a second of the auction's last slot, so an order that did not fill is dead, and
    falls back, within about two slots of it, never while it can still trade."""
    return max(1, math.ceil(duration_slots * slot_ms / 1000) - 1)


def uuid_for(trade_id: str | None, attempt: int = 0) -> bytes | None:
    """The Swift uuid of a trade's order: derived from the trade id, so the same order sent
    twice is one order to the venue (it skips a repeated uuid); fresh when there is no trade.
    A Swift retry of a refused order (`attempt` > 0) is a new order and gets its own uuid."""
    if trade_id is None:
        return None
    seed = trade_id if attempt == 0 else f"{trade_id}#{attempt}"
    return hashlib.sha256(seed.encode()).hexdigest()[:8].encode("ascii")
