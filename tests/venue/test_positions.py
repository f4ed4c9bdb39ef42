"""Position reads from anchor-encoded User bytes, fills from deltas, token amounts vs driftpy."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from driftpy.math.spot_market import get_token_amount
from driftpy.types import SpotBalanceType
from solders.pubkey import Pubkey

from tests.venue.driftpy_oracle import user_account_bytes
from venue.positions import PerpPositionView, fill_from_delta, read_user, token_amount


def test_read_user_matches_what_was_encoded() -> None:
    rng = random.Random(5)
    authority = Pubkey.new_unique()
    perps = [dict(market_index=rng.randrange(85), base=rng.randint(-10**12, 10**12) or 1,
                  quote=rng.randint(-10**11, 10**11), entry=rng.randint(-10**11, 10**11),
                  break_even=rng.randint(-10**11, 10**11), settled_pnl=rng.randint(-10**9, 10**9))
             for _ in range(5)]
    perps = list({p["market_index"]: p for p in perps}.values())
    spots = [dict(market_index=0, scaled_balance=123_456_789_000),
             dict(market_index=1, scaled_balance=5_000, borrow=True)]
    orders = [dict(order_id=7, market_index=perps[0]["market_index"], base=3 * 10**9,
                   filled=10**9, quote_filled=150 * 10**6, open_=True, short=True),
              dict(order_id=9, market_index=0, base=1, open_=False)]
    snap = read_user(user_account_bytes(authority, perps=perps, spots=spots, orders=orders,
                                        sub_account_id=3, next_order_id=10))
    assert snap.authority == authority and snap.sub_account_id == 3 and snap.next_order_id == 10
    assert set(snap.perps) == {p["market_index"] for p in perps}
    for p in perps:
        view = snap.perp(p["market_index"])
        assert (view.base_asset_amount, view.quote_asset_amount, view.quote_entry_amount,
                view.quote_break_even_amount, view.settled_pnl) == (
            p["base"], p["quote"], p["entry"], p["break_even"], p["settled_pnl"])
        assert view.entry_price == abs(p["entry"]) * 10**9 // abs(p["base"])
    assert snap.spot[0].scaled_balance == 123_456_789_000 and not snap.spot[0].is_borrow
    assert snap.spot[1].is_borrow
    assert set(snap.orders) == {7}  # only open orders are decoded
    o = snap.orders[7]
    assert (o.base_asset_amount_filled, o.quote_asset_amount_filled, o.direction) == (
        10**9, 150 * 10**6, 1)
    assert o.avg_fill_price == 150_000_000
    flat = snap.perp(84 if 84 not in snap.perps else 83)
    assert flat.base_asset_amount == 0 and flat.entry_price is None


def test_entry_price_of_known_position() -> None:
    raw = user_account_bytes(Pubkey.new_unique(), perps=[
        dict(market_index=0, base=2 * 10**9, quote=-300_200_000, entry=-300_000_000,
             break_even=-300_200_000)])
    view = read_user(raw).perp(0)
    assert view.entry_price == 150_000_000
    assert view.break_even_price == 150_100_000


def test_rejects_non_user_bytes() -> None:
    raw = user_account_bytes(Pubkey.new_unique())
    with pytest.raises(ValueError):
        read_user(b"\x00" * 8 + raw[8:])
    with pytest.raises(ValueError):
        read_user(raw[:100])


def P(base: int, quote: int, entry: int) -> PerpPositionView:
    return PerpPositionView(0, base_asset_amount=base, quote_asset_amount=quote,
                            quote_entry_amount=entry)


@pytest.mark.parametrize(("before", "after", "filled", "price", "fee_inclusive"), [
    # open long 2 @ 150 with a 0.2 fee: entry delta gives the exact fill price
    (P(0, 0, 0), P(2 * 10**9, -300_200_000, -300_000_000), 2 * 10**9, 150_000_000, False),
    # add to a short: sell 1 more @ 149.5
    (P(-10**9, 150_000_000, 150_000_000), P(-2 * 10**9, 299_450_000, 299_500_000),
     -10**9, 149_500_000, False),
    # reduce a long: sell 1 @ 160 with 0.05 fee -> fee-inclusive 159.95
    (P(2 * 10**9, -300_000_000, -300_000_000), P(10**9, -140_050_000, -150_000_000),
     -10**9, 159_950_000, True),
    # flip long 1 -> short 1: sold 2, quote +319.9
    (P(10**9, -150_000_000, -150_000_000), P(-10**9, 169_900_000, 160_000_000),
     -2 * 10**9, 159_950_000, True),
    # nothing filled
    (P(10**9, -1, -1), P(10**9, -1, -1), 0, None, False),
])
def test_fill_from_delta(before, after, filled, price, fee_inclusive) -> None:
    fill = fill_from_delta(before, after)
    assert (fill.base_filled, fill.avg_price, fill.fee_inclusive) == (filled, price, fee_inclusive)
    assert fill.quote_delta == after.quote_asset_amount - before.quote_asset_amount


def test_fill_from_delta_rejects_mixed_markets() -> None:
    with pytest.raises(ValueError):
        fill_from_delta(PerpPositionView(0), PerpPositionView(1))


def test_token_amount_matches_driftpy_for_deposits_and_borrows() -> None:
    rng = random.Random(3)
    for _ in range(200):
        decimals = rng.choice([6, 8, 9])
        scaled = rng.randrange(10**6)
        interest = rng.randrange(10**10, 2 * 10**10)
        market = SimpleNamespace(decimals=decimals, cumulative_deposit_interest=interest,
                                 cumulative_borrow_interest=interest)
        assert token_amount(scaled, interest, decimals) == get_token_amount(
            scaled, market, SpotBalanceType.Deposit())
        assert token_amount(scaled, interest, decimals, is_borrow=True) == get_token_amount(
            scaled, market, SpotBalanceType.Borrow())
