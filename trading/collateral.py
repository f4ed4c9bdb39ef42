"""Free collateral of a sub-account, estimated from its User account and market prices.

The estimate mirrors Drift's initial-margin rule in its simplest form: quote deposits plus the
unrealised PnL of each perp position at its market's oracle price, minus each position's
notional times the market's initial margin ratio. Positions in markets whose price is not
given are left out (their margin is then unknown), so callers pass every market they trade.
Spot balances other than the quote market are ignored. The quote balance is a scaled balance;
it is converted with the quote market's cumulative deposit interest (1.0 when unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from driftpy.constants.numeric_constants import (
    BASE_PRECISION,
    MARGIN_PRECISION,
    PRICE_PRECISION,
    QUOTE_PRECISION,
    SPOT_CUMULATIVE_INTEREST_PRECISION,
)

from venue.positions import UserSnapshot, token_amount

QUOTE_DECIMALS = 6


def free_collateral_usd(user: UserSnapshot, quote_market_index: int,
                        markets: Mapping[int, tuple[int, int]],
                        cumulative_interest: int = SPOT_CUMULATIVE_INTEREST_PRECISION) -> Decimal:
    """USD free collateral; `markets` maps market index -> (oracle price 1e6, margin ratio 1e4)."""
    quote = user.spot.get(quote_market_index)
    total = Decimal(0)
    if quote is not None:
        amount = token_amount(quote.scaled_balance, cumulative_interest, QUOTE_DECIMALS,
                              quote.is_borrow)
        total += Decimal(-amount if quote.is_borrow else amount) / QUOTE_PRECISION
    margin = Decimal(0)
    for index, position in user.perps.items():
        if index not in markets or (position.base_asset_amount == 0
                                    and position.quote_asset_amount == 0):
            continue
        price, ratio = markets[index]
        value = (Decimal(position.base_asset_amount) / BASE_PRECISION * Decimal(price)
                 / PRICE_PRECISION)
        total += Decimal(position.quote_asset_amount) / QUOTE_PRECISION + value
        margin += abs(value) * Decimal(ratio) / MARGIN_PRECISION
    return total - margin
