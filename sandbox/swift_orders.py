"""Swift order acceptance (what POST /orders answers) and keeper placement (what lands on chain).

Acceptance follows the real server's order of checks: JSON shape (422), signature over the
ASCII hex (400 "Error verifying signed message"), slot age (400 "Order slot too old"), order
params (400 "Invalid order" + InvalidOrderMarketType / InvalidOrderSizeTooSmall /
InvalidOrderAuction), user lookup (404 "unable to fetch user"), simulated placement
(400 "invalid order. error code: Drift(InsufficientCollateral)"), then 200 "Order processed".

Placement follows the program: no SignedMsgUserOrders account, a repeated uuid,
``slot + auction_duration < now`` or ``max_ts`` already behind the chain's unix time all mean
the order is silently never placed. A Market/Oracle order whose params carry no ``max_ts`` gets
the program's default, ``now + max(30, auction_duration / 2 + 10)`` seconds (protocol-v2
``place_perp_order``), so it outlives its auction and can still fill at its limit price.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from solders.pubkey import Pubkey
from solders.signature import Signature

from sandbox import codec, margin
from sandbox.accounts import MAX_ORDERS, OrderState, user_address
from sandbox.makers import draw_fill_offset, initial_budget, round_to_step

if TYPE_CHECKING:
    from sandbox.exchange import Exchange

MSG_SUCCESS = "Order processed"
MSG_VERIFY = "Error verifying signed message"
MSG_SLOT_TOO_OLD = "Order slot too old"
MSG_INVALID = "Invalid order"
MSG_TPSL_AMOUNT = "Invalid base_asset_amount in tp/sl"
MSG_DELIVERY_FAILED = "Failed to deliver message"

Reply = tuple[int, Any]  # (HTTP status, JSON object or plain text)
MAX_PENDING = 100_000  # accepted-but-unplaced orders kept (placement paused, say)


@dataclass
class PendingSwift:
    """A Swift order accepted with 200 and waiting for a keeper to place it on chain."""

    accepted_slot: int
    taker_authority: Pubkey
    signing_authority: Pubkey
    user: Pubkey
    delegated: bool
    params: Any  # decoded OrderParams (anchorpy object)
    slot: int
    uuid: bytes
    hash_key: str


def hash_key(signature: bytes) -> str:
    """The hash-status key of an order: standard base64 of sha256(signature bytes)."""
    return base64.b64encode(sha256(signature).digest()).decode()


def _json_error(detail: str) -> Reply:
    # axum's Json extractor rejects an undeserializable body with 422 and a text explanation.
    return 422, f"Failed to deserialize the JSON body into the target type: {detail}"


def _pubkey(body: dict[str, Any], name: str) -> Pubkey | None:
    raw = body.get(name)
    if raw in (None, ""):
        return None
    try:
        return Pubkey.from_string(str(raw))
    except Exception as exc:
        raise ValueError(f"{name}: invalid pubkey") from exc


def _check_params(params: Any, min_order_size: int, exempt_reduce_only: bool) -> str | None:
    """The server's validate_signed_order_params; returns the ErrorCode name or None."""
    order_type = codec.variant(params.order_type)
    if order_type not in ("Market", "Oracle", "Limit"):
        return "InvalidOrderMarketType"
    if codec.variant(params.market_type) != "Perp":
        return "InvalidOrderMarketType"
    small = params.base_asset_amount < min_order_size
    if small and not (exempt_reduce_only and params.reduce_only):
        return "InvalidOrderSizeTooSmall"
    dur, start, end = (params.auction_duration, params.auction_start_price,
                       params.auction_end_price)
    if dur is not None and start is not None and end is not None:
        long = codec.variant(params.direction) == "Long"
        if (long and start <= end) or (not long and start >= end):
            return None
        return "InvalidOrderAuction"
    if order_type == "Limit" and dur is None and start is None and end is None:
        return None
    return "InvalidOrderAuction"


def process_order(ex: Exchange, body: Any) -> Reply:
    """Handle one POST /orders body (already JSON-decoded); never raises."""
    if not isinstance(body, dict):
        return _json_error("expected a JSON object")
    message_hex = body.get("message")
    signature_b64 = body.get("signature")
    if not isinstance(message_hex, str):
        return _json_error("missing field `message`")
    if not isinstance(signature_b64, str):
        return _json_error("missing field `signature`")
    try:
        sig_bytes = base64.b64decode(signature_b64, validate=True)
        if len(sig_bytes) != 64:
            raise ValueError("signature must be 64 bytes")
        raw = bytes.fromhex(message_hex)
        delegated, msg = codec.decode_signed_message(raw)
        taker_pubkey = _pubkey(body, "taker_pubkey")
        signing = _pubkey(body, "signing_authority")
        taker_authority = _pubkey(body, "taker_authority") or taker_pubkey
    except (ValueError, binascii.Error) as exc:
        return _json_error(str(exc))
    if taker_authority is None:
        return 400, {"message": MSG_VERIFY, "error": "no taker_authority or taker_pubkey"}
    signer = signing or taker_authority
    authority_str = str(taker_authority)
    with ex.lock:
        ex.stats.incr("swift_orders_received", authority_str)
        if not Signature(sig_bytes).verify(signer, message_hex.encode()):
            ex.stats.incr("swift_rejected_signature", authority_str)
            return 400, {"message": MSG_VERIFY, "error": "Signature did not verify"}
        for trig in (msg.stop_loss_order_params, msg.take_profit_order_params):
            if trig is not None and (trig.base_asset_amount == 0 or trig.trigger_price == 0):
                return 400, {"message": MSG_TPSL_AMOUNT}
        now = ex.slot
        if msg.slot < now - ex.config.slot_too_old:
            ex.stats.incr("swift_rejected_slot", authority_str)
            return 400, {"message": MSG_SLOT_TOO_OLD, "error": MSG_SLOT_TOO_OLD}
        params = msg.signed_msg_order_params
        market = ex.markets.get(params.market_index)
        err = _check_params(params, market.min_order_size if market else 0,
                            ex.config.reduce_only_size_exempt)
        if err:
            ex.stats.incr("swift_rejected_invalid", authority_str)
            return 400, {"message": MSG_INVALID, "error": err}
        if delegated:
            user_key = Pubkey(bytes(msg.taker_pubkey))
        else:
            user_key = user_address(taker_authority, msg.sub_account_id)
        user = ex.users.get(user_key)
        if user is None:
            ex.stats.incr("swift_rejected_user", authority_str)
            return 404, {"message": MSG_INVALID,
                         "error": "unable to fetch user: AccountNotFound"}
        if market is None:
            return 400, {"message": MSG_INVALID,
                         "error": "invalid order. error code: Drift(PerpMarketNotFound)"}
        sign = 1 if codec.variant(params.direction) == "Long" else -1
        if not margin.has_collateral_for(user, market, sign, params.base_asset_amount,
                                         params.reduce_only, ex.markets, ex.oracles.prices()):
            ex.stats.incr("swift_rejected_collateral", authority_str)
            return 400, {"message": MSG_INVALID,
                         "error": "invalid order. error code: Drift(InsufficientCollateral)"}
        if len(ex.pending) >= MAX_PENDING:
            return 500, {"message": MSG_DELIVERY_FAILED, "error": "sandbox queue full"}
        ex.pending.append(PendingSwift(
            accepted_slot=now, taker_authority=taker_authority, signing_authority=signer,
            user=user_key, delegated=delegated, params=params, slot=msg.slot,
            uuid=bytes(msg.uuid), hash_key=hash_key(sig_bytes),
        ))
        ex.stats.incr("swift_orders_accepted", authority_str)
    return 200, {"message": MSG_SUCCESS}


def hash_status(ex: Exchange, query_hash: str | None) -> Reply:
    """GET /confirmation/hash-status: 200 order id once placed, 404 "not found" before."""
    if query_hash is None:
        return 400, "Failed to deserialize query string: missing field `hash`"
    if query_hash == "":
        return 400, "Missing hash parameter"
    with ex.lock:
        entry = ex.hashes.get(query_hash)
    if entry is None:
        return 404, "not found"
    return 200, str(entry[0])


def place_pending(ex: Exchange, slot: int) -> None:
    """Keeper pass: place every accepted order whose placement delay has elapsed."""
    if ex.faults.swift_placement_paused:
        return
    delay = ex.config.placement_delay_slots
    due: list[PendingSwift] = []
    waiting: list[PendingSwift] = []
    for p in ex.pending:
        (due if slot - p.accepted_slot >= delay else waiting).append(p)
    if not due:
        return
    ex.pending = waiting
    for p in due:
        _place(ex, p, slot)


def default_max_ts(order_type: str, max_ts: int | None, auction_duration: int,
                   now: int) -> int:
    """The max_ts the program stores (protocol-v2 place_perp_order): the params' own value when
    given; else ``now + max(30, auction_duration / 2 + 10)`` for Market and Oracle orders and
    0 (no expiry) for the others."""
    if max_ts is not None:
        return int(max_ts)
    if order_type in ("Market", "Oracle"):
        return now + max(30, auction_duration // 2 + 10)
    return 0


def _drop(ex: Exchange, p: PendingSwift, reason: str) -> None:
    ex.stats.incr(f"swift_not_placed_{reason}", str(p.taker_authority))


def _place(ex: Exchange, p: PendingSwift, slot: int) -> None:
    """The program's place_signed_msg_taker_order, simplified."""
    user = ex.users.get(p.user)
    if user is None:
        return _drop(ex, p, "no_user")
    orders_acc = ex.signed_msg.get(user.authority)
    if orders_acc is None:
        return _drop(ex, p, "no_signed_msg_account")
    if p.delegated and p.signing_authority not in (user.delegate, user.authority):
        return _drop(ex, p, "bad_delegate")
    if orders_acc.has_uuid(p.uuid):
        return _drop(ex, p, "duplicate_uuid")
    params = p.params
    duration = params.auction_duration or 0
    if p.slot + duration < slot:
        return _drop(ex, p, "max_slot_passed")
    order_type = codec.variant(params.order_type)
    now_ts = ex.clock.unix_ts()
    max_ts = default_max_ts(order_type, params.max_ts, duration, now_ts)
    if max_ts != 0 and max_ts < now_ts:
        return _drop(ex, p, "max_ts_passed")  # "max_ts < now, skipping order"
    if len(user.open_orders()) >= MAX_ORDERS:
        return _drop(ex, p, "max_number_of_orders")
    index = orders_acc.free_index(slot, ex.config.signed_msg_release_slots)
    if index is None:
        return _drop(ex, p, "signed_msg_account_full")
    market = ex.markets[params.market_index]
    base = round_to_step(params.base_asset_amount, market.step_size)
    if base <= 0:
        return _drop(ex, p, "size_zero")
    sign = 1 if codec.variant(params.direction) == "Long" else -1
    if not margin.has_collateral_for(user, market, sign, base, params.reduce_only,
                                     ex.markets, ex.oracles.prices()):
        return _drop(ex, p, "insufficient_collateral")
    pos = user.positions.get(params.market_index)
    order = OrderState(
        order_id=ex.new_order_id(user), market_index=params.market_index,
        direction="long" if sign > 0 else "short", order_type=order_type,
        base_asset_amount=base, slot=p.slot, price=params.price,
        auction_duration=duration, auction_start_price=params.auction_start_price or 0,
        auction_end_price=params.auction_end_price or 0,
        oracle_price_offset=params.oracle_price_offset or 0, reduce_only=params.reduce_only,
        post_only=codec.variant(params.post_only) != "None", user_order_id=params.user_order_id,
        max_ts=max_ts, bit_flags=params.bit_flags,
        existing_long=not (pos and pos.base_asset_amount < 0), posted_slot=slot,
        uuid=p.uuid, signed=True,
    )
    order.maker_budget = initial_budget(order, ex.liquidity.get(order.market_index),
                                        market.step_size)
    cfg = ex.config
    if cfg.fill_profile == "v3" and duration > 0:
        order.fill_bucket, order.fill_offset = draw_fill_offset(
            ex.fill_rng, duration, cfg.v3_fast_share, cfg.v3_late_share)
        ex.stats.incr(f"v3_drawn_{order.fill_bucket}")
    user.orders.append(order)
    orders_acc.put(index, p.uuid, p.slot + duration, order.order_id)
    user.touch(slot)
    ex.hashes[p.hash_key] = (order.order_id, slot)
    ex.stats.incr("swift_orders_placed", str(p.taker_authority))
