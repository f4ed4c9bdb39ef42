"""Simulated makers: who fills a Swift order's Dutch auction, at what price and how much.

The auction price moves linearly from auction_start_price to auction_end_price over
auction_duration slots starting at the order's slot (absolute prices for Market/Limit orders,
offsets from the oracle for Oracle orders). *When* makers fill depends on the fill profile
(``ExchangeConfig.fill_profile``):

- ``edge`` (default): makers take the taker's side as soon as the auction price is at least
  ``edge_bps`` better for them than the oracle.
- ``v3``: each signed order draws, when it is placed and from the exchange's seeded RNG, the
  slot offset after its signed slot at which makers fill it (Drift's "v3" figures: by default
  85 % within 1-2 slots, 10 % later in the auction, 5 % never, see :func:`draw_fill_offset`).
  The fill price is the auction price at the slot of the fill.

How much they fill depends on the market's liquidity mode: ``full`` (everything), ``partial``
(a fraction of each order, the rest stays open unfilled until the order's ``max_ts``) or
``none`` (nothing, the order rests until its ``max_ts``).

After its auction an order keeps the program's limit price (:func:`auction_price`): the
oracle plus its offset, else its ``price``, else (a Market/Oracle order without a price) the
program's fallback price.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.accounts import OrderState

LIQUIDITY_MODES = ("full", "partial", "none")
FILL_PROFILES = ("edge", "v3")


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


def fallback_price(order: OrderState, oracle: int, seconds_til_expiry: int) -> int:
    """The program's limit price for a taker order with no price of its own (protocol-v2
    ``AMM::get_fallback_price``, liquid-AMM branch): the AMM's ask (bid) plus (minus) a buffer
    of 1/200 .. 1/100 of it, wider as expiry nears. The sandbox has no AMM curve, so the
    oracle stands in for the AMM's ask and bid."""
    divisor = min(max(seconds_til_expiry * 20, 100), 200)
    return oracle + oracle // divisor if order.sign > 0 else oracle - oracle // divisor


def auction_price(order: OrderState, slot: int, oracle: int,
                  seconds_til_expiry: int = 0) -> int | None:
    """The order's limit price at ``slot`` (protocol-v2 ``Order::get_limit_price``): the auction
    price during its auction; after it the oracle plus the order's offset, else its ``price``,
    else, for a Market/Oracle order, the fallback price; None for a Limit order without one."""
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
    if order.order_type == "Oracle" and order.oracle_price_offset:
        return oracle + order.oracle_price_offset
    if order.price:
        return order.price
    if order.order_type in ("Market", "Oracle"):
        return fallback_price(order, oracle, seconds_til_expiry)
    return None


def draw_fill_offset(rng: random.Random, auction_duration: int, fast_share: float,
                     late_share: float) -> tuple[str, int | None]:
    """The v3 profile's draw for one order: (bucket, slots after its signed slot at which
    makers fill it, None = never). ``fast`` (share ``fast_share``): 1 or 2 slots; ``late``
    (``late_share``): 3 .. auction_duration; ``never``: the rest. Offsets stay inside the
    auction (a 1-slot auction fills fast orders at slot 1, a 2-slot one late orders at 2)."""
    span = max(1, int(auction_duration))
    u = rng.random()
    if u < fast_share:
        return "fast", min(rng.randint(1, 2), span)
    if u < fast_share + late_share:
        return "late", rng.randint(min(3, span), span)
    return "never", None


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
