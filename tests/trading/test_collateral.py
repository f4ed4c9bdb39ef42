"""Free collateral estimate: deposits, unrealised and unsettled PnL, initial margin."""

from decimal import Decimal

from solders.pubkey import Pubkey

from trading.collateral import free_collateral_usd
from venue.positions import PerpPositionView, SpotBalanceView, UserSnapshot

KEY = Pubkey.default()


def user(scaled_quote: int, *perps: PerpPositionView, borrow: bool = False) -> UserSnapshot:
    spot = {0: SpotBalanceView(0, scaled_quote, borrow)}
    return UserSnapshot(KEY, KEY, 0, perps={p.market_index: p for p in perps}, spot=spot)


def test_deposits_only() -> None:
    # 1000 USDC = 1e12 scaled (1e9 precision per token unit of 1e6) at interest 1.0
    assert free_collateral_usd(user(1_000_000_000_000), 0, {}) == Decimal(1000)


def test_a_position_adds_its_unrealised_pnl_and_takes_its_initial_margin() -> None:
    long_2_at_150 = PerpPositionView(0, base_asset_amount=2 * 10**9,
                                     quote_asset_amount=-300 * 10**6)
    markets = {0: (160 * 10**6, 1000)}  # oracle 160, initial margin 10 %
    free = free_collateral_usd(user(1_000_000_000_000, long_2_at_150), 0, markets)
    assert free == Decimal(1000) + Decimal(20) - Decimal(32)  # +20 PnL, 320 notional * 10 %


def test_unsettled_pnl_of_a_closed_position_counts() -> None:
    closed_with_profit = PerpPositionView(0, base_asset_amount=0, quote_asset_amount=12 * 10**6)
    free = free_collateral_usd(user(1_000_000_000_000, closed_with_profit), 0,
                               {0: (150 * 10**6, 1000)})
    assert free == Decimal(1012)


def test_a_borrow_is_negative_and_unpriced_markets_are_left_out() -> None:
    other_market = PerpPositionView(5, base_asset_amount=10**9, quote_asset_amount=-10**8)
    free = free_collateral_usd(user(50_000_000_000, other_market, borrow=True), 0, {})
    assert free == Decimal(-50)
