"""Position accounting and the sandbox's simplified collateral check.

Simplification (documented, deliberate): collateral is the quote (USDC) spot balance plus the
unrealized PnL of every perp position at the oracle; the initial margin of a position is its
notional at the oracle divided by the market's leverage limit. An order that increases
exposure is accepted when free collateral covers the added notional / leverage limit. No
funding, no maintenance margin or liquidation, no open-order margin, no fee tiers.
"""

from __future__ import annotations

from driftpy.constants.numeric_constants import BASE_PRECISION

from sandbox.accounts import UserState
from sandbox.markets import MarketSpec


def quote_for(base: int, price: int) -> int:
    """Quote amount (1e6) of ``base`` (1e9) at ``price`` (1e6), rounded to nearest."""
    return (abs(base) * price + BASE_PRECISION // 2) // BASE_PRECISION


def free_collateral(user: UserState, markets: dict[int, MarketSpec], prices: dict[int, int]) -> int:
    """Quote balance + unrealized PnL - initial margin of open positions, in quote units."""
    total = user.quote_balance
    margin = 0
    for pos in user.positions.values():
        if pos.base_asset_amount == 0 and pos.quote_asset_amount == 0:
            continue
        price = prices[pos.market_index]
        value = quote_for(pos.base_asset_amount, price)
        signed_value = value if pos.base_asset_amount > 0 else -value
        total += pos.quote_asset_amount + signed_value
        margin += value // markets[pos.market_index].max_leverage
    return total - margin


def added_exposure(user: UserState, market_index: int, sign: int, base: int) -> int:
    """Base by which |position| would grow if ``sign * base`` filled (0 when only reducing)."""
    pos = user.positions.get(market_index)
    current = pos.base_asset_amount if pos else 0
    after = current + sign * base
    return max(0, abs(after) - abs(current))


def has_collateral_for(user: UserState, market: MarketSpec, sign: int, base: int,
                       reduce_only: bool, markets: dict[int, MarketSpec],
                       prices: dict[int, int]) -> bool:
    """The acceptance rule above: can ``user`` add this exposure?"""
    if reduce_only:
        return True
    grow = added_exposure(user, market.market_index, sign, base)
    if grow == 0:
        return True
    need = quote_for(grow, prices[market.market_index]) // market.max_leverage
    return free_collateral(user, markets, prices) >= need


def reducible(user: UserState, market_index: int, sign: int) -> int:
    """Largest base a reduce-only order in direction ``sign`` may fill."""
    pos = user.positions.get(market_index)
    if pos is None or pos.base_asset_amount == 0:
        return 0
    if (pos.base_asset_amount > 0) == (sign > 0):
        return 0
    return abs(pos.base_asset_amount)


def apply_fill(user: UserState, market_index: int, sign: int, base: int, price: int,
               fee: int) -> int:
    """Book a fill of ``sign * base`` at ``price`` paying ``fee``; returns the quote amount.

    Quote moves like Drift's: a long pays (quote_asset_amount falls), a short receives.
    quote_entry_amount tracks the cost of the open base only and shrinks pro rata on reduces.
    When a position returns to zero its realized PnL stays in quote_asset_amount (unsettled,
    as on Drift until settle_pnl), so clients can derive fill prices from quote deltas; it
    counts as collateral but is not withdrawable.
    """
    pos = user.position(market_index)
    quote = quote_for(base, price)
    remaining = base
    current = pos.base_asset_amount
    if current != 0 and (current > 0) != (sign > 0):
        closing = min(remaining, abs(current))
        entry_part = pos.quote_entry_amount * closing // abs(current)
        pos.quote_entry_amount -= entry_part
        pos.base_asset_amount += sign * closing
        remaining -= closing
    pos.quote_asset_amount += -sign * quote - fee
    pos.quote_break_even_amount += -sign * quote - fee
    if remaining:
        pos.quote_entry_amount += -sign * quote_for(remaining, price)
        pos.base_asset_amount += sign * remaining
    if pos.base_asset_amount == 0:
        pos.quote_break_even_amount = pos.quote_asset_amount
        pos.quote_entry_amount = 0
    return quote
