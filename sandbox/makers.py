"""Simulated makers: who fills a Swift order's Dutch auction, at what price and how much.

The auction price moves linearly from auction_start_price to auction_end_price over
auction_duration slots starting at the order's slot (absolute prices for Market/Limit orders,
offsets from the oracle for Oracle orders). Makers take the taker's side as soon as the auction
price is at least ``edge_bps`` better for them than the oracle. How much they fill depends on
the market's liquidity mode: ``full`` (everything), ``partial`` (a fraction of each order, the
rest expires) or ``none`` (nothing, the order expires at auction end).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sandbox.accounts import OrderState

LIQUIDITY_MODES = ("full", "partial", "none")


@dataclass
class Liquidity:
    """Liquidity of one market."""

    mode: str = "full"
    fraction: float = 0.5  # share of each order filled in partial mode

    def validate(self) -> None:
        """ValueError on an unknown mode or a fraction outside (0, 1]."""
        if self.mode not in LIQUIDITY_MODES:
            raise ValueError(f"liquidity mode must be one of {LIQUIDITY_MODES}")
        if not 0.0 < float(self.fraction) <= 1.0:
            raise ValueError("liquidity fraction must be within (0, 1]")


class LiquidityBook:
    """Per-market liquidity with a default for markets not configured."""

    def __init__(self) -> None:
        self.default = Liquidity()
        self.markets: dict[int, Liquidity] = {}

    def get(self, market_index: int) -> Liquidity:
        """The liquidity that applies to a market."""
        return self.markets.get(market_index, self.default)

    def set(self, market_index: int | None, mode: str, fraction: float = 0.5) -> None:
        """Configure one market (or the default when ``market_index`` is None)."""
        liq = Liquidity(mode=mode, fraction=float(fraction))
        liq.validate()
        if market_index is None:
            self.default = liq
        else:
            self.markets[int(market_index)] = liq

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view."""
        return {"default": asdict(self.default),
                "markets": {str(k): asdict(v) for k, v in self.markets.items()}}


def auction_price(order: OrderState, slot: int, oracle: int) -> int | None:
    """The order's price at ``slot``; None once a Market order's auction is over."""
    elapsed = max(0, slot - order.slot)
    in_auction = order.auction_duration > 0 and elapsed <= order.auction_duration
    if in_auction:
        start, end = order.auction_start_price, order.auction_end_price
        if order.order_type == "Oracle":
            start, end = oracle + start, oracle + end
        price = start + (end - start) * elapsed // order.auction_duration
        if order.price:
            price = min(price, order.price) if order.sign > 0 else max(price, order.price)
        return price
    if order.order_type == "Market":
        return None
    if order.order_type == "Oracle" and order.oracle_price_offset:
        return oracle + order.oracle_price_offset
    return order.price or None


def maker_accepts(order: OrderState, price: int, oracle: int, edge_bps: float) -> bool:
    """Would a maker trade against this taker at ``price``?"""
    if order.sign > 0:  # maker sells
        return price * 10_000 >= oracle * (10_000 + edge_bps)
    return price * 10_000 <= oracle * (10_000 - edge_bps)


def round_to_step(base: int, step: int) -> int:
    """Round a base amount down to the market's step size."""
    return base - base % step if step > 0 else base


def initial_budget(order: OrderState, liquidity: Liquidity, step: int) -> int:
    """How much base makers will fill of this order over its life."""
    if liquidity.mode == "none":
        return 0
    if liquidity.mode == "partial":
        return round_to_step(int(order.base_asset_amount * liquidity.fraction), step)
    return order.base_asset_amount
