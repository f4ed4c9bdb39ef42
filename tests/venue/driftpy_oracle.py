"""Test helpers that run driftpy's own code as the reference ("oracle") for our encoders."""

from __future__ import annotations

from types import SimpleNamespace

from driftpy.constants.config import DRIFT_PROGRAM_ID
from driftpy.drift_client import DriftClient
from driftpy.types import (
    SignedMsgOrderParamsDelegateMessage,
    SignedMsgOrderParamsMessage,
    SignedMsgTriggerOrderParams,
)

from venue.drift_program import drift_program
from venue.drift_types import to_order_params
from venue.swift_message import DELEGATE_MESSAGE_DISCRIMINATOR
from venue.swift_order import SignedMsgOrder


def program():
    """The anchorpy Program (driftpy IDL) for Drift's program id."""
    return drift_program(DRIFT_PROGRAM_ID)


def client_stub() -> SimpleNamespace:
    """Enough of a DriftClient for its pure encode/decode methods to run unbound."""
    return SimpleNamespace(program=program())


def _trig(t):
    return None if t is None else SignedMsgTriggerOrderParams(t.trigger_price, t.base_asset_amount)


def driftpy_encode(m: SignedMsgOrder) -> bytes:
    """Encode with driftpy: DriftClient's encoder, or its coder directly for delegates.

    driftpy 0.8.89's ``encode_signed_msg_order_params_message(..., delegate_signer=True)``
    raises TypeError (it rebuilds the dataclass without the three newest fields), so the
    delegate variant goes through the same anchor coder call that method would make.
    """
    common = dict(
        signed_msg_order_params=to_order_params(m.params),
        slot=m.slot,
        uuid=m.uuid,
        take_profit_order_params=_trig(m.take_profit),
        stop_loss_order_params=_trig(m.stop_loss),
        max_margin_ratio=m.max_margin_ratio,
        builder_idx=m.builder_idx,
        builder_fee_tenth_bps=m.builder_fee_tenth_bps,
    )
    if m.taker_pubkey is None:
        msg = SignedMsgOrderParamsMessage(sub_account_id=m.sub_account_id, **common)
        return DriftClient.encode_signed_msg_order_params_message(client_stub(), msg)
    msg = SignedMsgOrderParamsDelegateMessage(taker_pubkey=list(bytes(m.taker_pubkey)), **common)
    encoded = program().coder.types.encode("SignedMsgOrderParamsDelegateMessage", msg)
    return DELEGATE_MESSAGE_DISCRIMINATOR + encoded


def driftpy_decode(raw: bytes, delegate: bool):
    """Decode with DriftClient.decode_signed_msg_order_params_message (anchor coder)."""
    return DriftClient.decode_signed_msg_order_params_message(client_stub(), raw, delegate)


def _spot_dict(market_index: int = 0, scaled_balance: int = 0, borrow: bool = False,
               open_orders: int = 0) -> dict:
    from driftpy.types import SpotBalanceType

    return dict(scaled_balance=scaled_balance, open_bids=0, open_asks=0, cumulative_deposits=0,
                market_index=market_index,
                balance_type=SpotBalanceType.Borrow() if borrow else SpotBalanceType.Deposit(),
                open_orders=open_orders, padding=[0] * 4)


def _perp_dict(market_index: int = 0, base: int = 0, quote: int = 0, entry: int = 0,
               break_even: int = 0, open_orders: int = 0, settled_pnl: int = 0) -> dict:
    return dict(last_cumulative_funding_rate=0, base_asset_amount=base, quote_asset_amount=quote,
                quote_break_even_amount=break_even, quote_entry_amount=entry, open_bids=0,
                open_asks=0, settled_pnl=settled_pnl, lp_shares=0,
                last_base_asset_amount_per_lp=0, last_quote_asset_amount_per_lp=0,
                padding=[0, 0], max_margin_ratio=0, market_index=market_index,
                open_orders=open_orders, per_lp_base=0)


def _order_dict(order_id: int = 0, market_index: int = 0, base: int = 0, filled: int = 0,
                quote_filled: int = 0, open_: bool = False, short: bool = False) -> dict:
    from driftpy.types import (
        MarketType,
        OrderStatus,
        OrderTriggerCondition,
        OrderType,
        PositionDirection,
    )

    direction = PositionDirection.Short() if short else PositionDirection.Long()
    return dict(slot=0, price=0, base_asset_amount=base, base_asset_amount_filled=filled,
                quote_asset_amount_filled=quote_filled, trigger_price=0, auction_start_price=0,
                auction_end_price=0, max_ts=0, oracle_price_offset=0, order_id=order_id,
                market_index=market_index,
                status=OrderStatus.Open() if open_ else OrderStatus.Init(),
                order_type=OrderType.Market(), market_type=MarketType.Perp(), user_order_id=0,
                existing_position_direction=PositionDirection.Long(), direction=direction,
                reduce_only=False, post_only=False, immediate_or_cancel=False,
                trigger_condition=OrderTriggerCondition.Above(), auction_duration=0,
                posted_slot_tail=0, bit_flags=0, padding=[0])


def user_account_bytes(authority, *, perps=(), spots=(), orders=(), sub_account_id: int = 0,
                       next_order_id: int = 1) -> bytes:
    """Encode a Drift User account with driftpy's IDL through anchor's account coder.

    ``perps``/``spots``/``orders`` are kwargs dicts for the helpers above; empty slots are
    zero-filled, as on chain.
    """
    from anchorpy.program.common import NamedInstruction
    from driftpy.types import MarginMode
    from solders.pubkey import Pubkey

    perp_list = [_perp_dict(**p) for p in perps] + [_perp_dict()] * (8 - len(perps))
    spot_list = [_spot_dict(**s) for s in spots] + [_spot_dict()] * (8 - len(spots))
    order_list = [_order_dict(**o) for o in orders] + [_order_dict()] * (32 - len(orders))
    user = dict(
        authority=authority, delegate=Pubkey.default(), name=[32] * 32,
        spot_positions=spot_list, perp_positions=perp_list, orders=order_list,
        last_add_perp_lp_shares_ts=0, total_deposits=0, total_withdraws=0, total_social_loss=0,
        settled_perp_pnl=0, cumulative_spot_fees=0, cumulative_perp_funding=0,
        liquidation_margin_freed=0, last_active_slot=0, next_order_id=next_order_id,
        max_margin_ratio=0, next_liquidation_id=0, sub_account_id=sub_account_id, status=0,
        is_margin_trading_enabled=True, idle=False, open_orders=0, has_open_order=False,
        open_auctions=0, has_open_auction=False, margin_mode=MarginMode.Default(), pool_id=0,
        padding1=[0] * 3, last_fuel_bonus_update_ts=0, padding=[0] * 12,
    )
    return program().coder.accounts.build(NamedInstruction(data=user, name="User"))
