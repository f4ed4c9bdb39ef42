"""The sandbox's perp market table: driftpy's 85 mainnet markets with synthetic trading rules.

driftpy's configs give symbols and indexes but not prices or size rules, so each market gets an
initial oracle price, a min order size, a step size and a leverage limit here. The three markets
tests and demos use most (SOL, BTC, ETH) carry realistic values; the rest share defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftpy.constants.numeric_constants import PRICE_PRECISION
from driftpy.constants.perp_markets import mainnet_perp_market_configs
from driftpy.constants.spot_markets import mainnet_spot_market_configs
from solders.pubkey import Pubkey

QUOTE_SPOT_MARKET_INDEX = 0
QUOTE_MINT: Pubkey = mainnet_spot_market_configs[0].mint
QUOTE_DECIMALS = mainnet_spot_market_configs[0].decimals


@dataclass(frozen=True)
class MarketSpec:
    """Trading rules of one sandbox perp market (prices 1e6, sizes 1e9)."""

    market_index: int
    symbol: str
    oracle: Pubkey
    initial_price: int
    min_order_size: int
    step_size: int
    max_leverage: int = 20
    volatility_bps: float = 2.0  # standard deviation of the per-slot oracle move


_KNOWN = {
    # symbol: (price, min_order_size, step_size)
    "SOL-PERP": (150 * PRICE_PRECISION, 10_000_000, 10_000_000),
    "BTC-PERP": (60_000 * PRICE_PRECISION, 100_000, 100_000),
    "ETH-PERP": (3_000 * PRICE_PRECISION, 1_000_000, 1_000_000),
}
_DEFAULT = (10 * PRICE_PRECISION, 100_000_000, 100_000_000)


def default_markets() -> dict[int, MarketSpec]:
    """Every driftpy mainnet perp market, keyed by market index."""
    out: dict[int, MarketSpec] = {}
    for cfg in mainnet_perp_market_configs:
        price, min_size, step = _KNOWN.get(cfg.symbol, _DEFAULT)
        out[cfg.market_index] = MarketSpec(
            market_index=cfg.market_index,
            symbol=cfg.symbol,
            oracle=cfg.oracle,
            initial_price=price,
            min_order_size=min_size,
            step_size=step,
        )
    return out
