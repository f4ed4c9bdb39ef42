"""Read a PerpMarket account: the size rules and the last oracle price an order is built from.

driftpy's market tables carry no order sizes, and the oracle price a Swift auction is anchored
to must be fresh, so both are read from the market account itself (one getAccountInfo) and
decoded with driftpy's IDL.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.pubkey import Pubkey

from venue.drift_program import drift_program


@dataclass(frozen=True)
class MarketState:
    """What an order needs from a perp market (prices 1e6, sizes 1e9)."""

    market_index: int
    min_order_size: int
    step_size: int
    oracle: Pubkey
    oracle_price: int
    margin_ratio_initial: int  # 1e4: 1000 = 10 % = 10x


def read_perp_market(program_id: Pubkey, data: bytes) -> MarketState:
    """Decode PerpMarket account bytes; raises ValueError for anything else."""
    try:
        market = drift_program(program_id).coder.accounts.decode(data)
    except Exception as exc:
        raise ValueError(f"not a PerpMarket account: {type(exc).__name__}") from None
    if type(market).__name__ != "PerpMarket":
        raise ValueError(f"not a PerpMarket account: {type(market).__name__}")
    amm = market.amm
    return MarketState(
        market_index=market.market_index,
        min_order_size=amm.min_order_size,
        step_size=amm.order_step_size,
        oracle=amm.oracle,
        oracle_price=amm.historical_oracle_data.last_oracle_price,
        margin_ratio_initial=market.margin_ratio_initial,
    )
