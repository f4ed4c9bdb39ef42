"""Translation between our plain OrderSpec and driftpy's OrderParams (for the anchor coder)."""

from __future__ import annotations

from typing import Any

from driftpy.types import (
    MarketType,
    OrderParams,
    OrderTriggerCondition,
    OrderType,
    PositionDirection,
    PostOnlyParams,
)

from venue.swift_order import OrderSpec

ORDER_TYPES = (OrderType.Market, OrderType.Limit, OrderType.TriggerMarket,
               OrderType.TriggerLimit, OrderType.Oracle)
MARKET_TYPES = (MarketType.Spot, MarketType.Perp)
DIRECTIONS = (PositionDirection.Long, PositionDirection.Short)
POST_ONLY = (PostOnlyParams.NONE, PostOnlyParams.MustPostOnly, PostOnlyParams.TryPostOnly,
             PostOnlyParams.Slide)
TRIGGER_CONDITIONS = (OrderTriggerCondition.Above, OrderTriggerCondition.Below,
                      OrderTriggerCondition.TriggeredAbove, OrderTriggerCondition.TriggeredBelow)


def to_order_params(p: OrderSpec) -> OrderParams:
    """driftpy OrderParams with the same field values as ``p``."""
    return OrderParams(
        order_type=ORDER_TYPES[p.order_type](),
        market_type=MARKET_TYPES[p.market_type](),
        direction=DIRECTIONS[p.direction](),
        user_order_id=p.user_order_id,
        base_asset_amount=p.base_asset_amount,
        price=p.price,
        market_index=p.market_index,
        reduce_only=p.reduce_only,
        post_only=POST_ONLY[p.post_only](),
        bit_flags=p.bit_flags,
        max_ts=p.max_ts,
        trigger_price=p.trigger_price,
        trigger_condition=TRIGGER_CONDITIONS[p.trigger_condition](),
        oracle_price_offset=p.oracle_price_offset,
        auction_duration=p.auction_duration,
        auction_start_price=p.auction_start_price,
        auction_end_price=p.auction_end_price,
    )


def from_order_params(o: Any) -> OrderSpec:
    """Our OrderSpec from a driftpy/anchor-decoded OrderParams (variants carry ``.index``)."""
    return OrderSpec(
        order_type=o.order_type.index,
        market_type=o.market_type.index,
        direction=o.direction.index,
        user_order_id=o.user_order_id,
        base_asset_amount=o.base_asset_amount,
        price=o.price,
        market_index=o.market_index,
        reduce_only=o.reduce_only,
        post_only=o.post_only.index,
        bit_flags=o.bit_flags,
        max_ts=o.max_ts,
        trigger_price=o.trigger_price,
        trigger_condition=o.trigger_condition.index,
        oracle_price_offset=o.oracle_price_offset,
        auction_duration=o.auction_duration,
        auction_start_price=o.auction_start_price,
        auction_end_price=o.auction_end_price,
    )
