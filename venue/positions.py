"""Positions read from raw User account bytes (one getAccountInfo, no subscription, no websocket).

Decoding is driftpy's ``driftpy.decode.user.decode_user``; this module turns it into plain
numbers the trading core uses and derives fills from position deltas, because Swift tells us
only that an order was *placed* and a filled order's slot in the User account is recycled.

Units: base 1e9 (signed: long > 0), quote 1e6, prices 1e6.

Fill-from-delta caveats, written down so nobody rediscovers them with real money:
``quote_asset_amount`` moves by the fill notional *and* the taker fee (and by funding if it
settled between the two reads), so a price derived from it is fee-inclusive. When a fill only
opens or increases a position, ``quote_entry_amount`` moves by the notional alone, so that
delta gives the fee-exclusive price; on reductions the entry amount shrinks at the old entry
price instead. :func:`fill_from_delta` therefore uses the entry delta when the position grew in
the same direction and the quote delta otherwise, and reports which one it used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from driftpy.constants.numeric_constants import BASE_PRECISION
from driftpy.decode.user import decode_user
from driftpy.types import UserAccount
from solders.pubkey import Pubkey

USER_DISCRIMINATOR = hashlib.sha256(b"account:User").digest()[:8]
USER_ACCOUNT_SIZE = 4376


@dataclass(frozen=True)
class PerpPositionView:
    """One perp position as plain integers."""

    market_index: int
    base_asset_amount: int = 0
    quote_asset_amount: int = 0
    quote_entry_amount: int = 0
    quote_break_even_amount: int = 0
    settled_pnl: int = 0
    open_orders: int = 0
    open_bids: int = 0
    open_asks: int = 0

    @property
    def entry_price(self) -> int | None:
        """Average entry price (1e6) excluding fees, None when flat."""
        return _price(self.quote_entry_amount, self.base_asset_amount)

    @property
    def break_even_price(self) -> int | None:
        """Break-even price (1e6) including fees, None when flat."""
        return _price(self.quote_break_even_amount, self.base_asset_amount)


@dataclass(frozen=True)
class SpotBalanceView:
    """A spot balance in scaled units (SPOT_BALANCE_PRECISION 1e9) and its direction."""

    market_index: int
    scaled_balance: int
    is_borrow: bool
    open_orders: int = 0


@dataclass(frozen=True)
class OrderView:
    """An open order slot: the fill so far, for matching a Swift order id to its progress."""

    order_id: int
    market_index: int
    base_asset_amount: int
    base_asset_amount_filled: int
    quote_asset_amount_filled: int
    direction: int
    reduce_only: bool
    status: str

    @property
    def avg_fill_price(self) -> int | None:
        """Average fill price so far (1e6, fee-exclusive), None before any fill."""
        return _price(self.quote_asset_amount_filled, self.base_asset_amount_filled)


@dataclass(frozen=True)
class UserSnapshot:
    """What the trading core needs from one User account read."""

    authority: Pubkey
    delegate: Pubkey
    sub_account_id: int
    perps: dict[int, PerpPositionView] = field(default_factory=dict)
    spot: dict[int, SpotBalanceView] = field(default_factory=dict)
    orders: dict[int, OrderView] = field(default_factory=dict)
    next_order_id: int = 0
    settled_perp_pnl: int = 0
    total_deposits: int = 0
    total_withdraws: int = 0
    raw: UserAccount | None = field(default=None, repr=False, compare=False)

    def perp(self, market_index: int) -> PerpPositionView:
        """The position in ``market_index`` (a flat one when the user has none)."""
        return self.perps.get(market_index, PerpPositionView(market_index))


def _price(quote: int, base: int) -> int | None:
    if base == 0:
        return None
    return abs(quote) * BASE_PRECISION // abs(base)


def read_user(data: bytes) -> UserSnapshot:
    """Decode User account bytes; rejects anything that is not a User account."""
    if len(data) < USER_ACCOUNT_SIZE or data[:8] != USER_DISCRIMINATOR:
        raise ValueError("not a Drift User account")
    u = decode_user(data)
    perps = {
        p.market_index: PerpPositionView(
            market_index=p.market_index,
            base_asset_amount=p.base_asset_amount,
            quote_asset_amount=p.quote_asset_amount,
            quote_entry_amount=p.quote_entry_amount,
            quote_break_even_amount=p.quote_break_even_amount,
            settled_pnl=p.settled_pnl,
            open_orders=p.open_orders,
            open_bids=p.open_bids,
            open_asks=p.open_asks,
        )
        for p in u.perp_positions
    }
    spot = {
        s.market_index: SpotBalanceView(
            market_index=s.market_index,
            scaled_balance=s.scaled_balance,
            is_borrow=type(s.balance_type).__name__ == "Borrow",
            open_orders=s.open_orders,
        )
        for s in u.spot_positions
    }
    orders = {
        o.order_id: OrderView(
            order_id=o.order_id,
            market_index=o.market_index,
            base_asset_amount=o.base_asset_amount,
            base_asset_amount_filled=o.base_asset_amount_filled,
            quote_asset_amount_filled=o.quote_asset_amount_filled,
            direction=0 if type(o.direction).__name__ == "Long" else 1,
            reduce_only=o.reduce_only,
            status=type(o.status).__name__,
        )
        for o in u.orders
    }
    return UserSnapshot(
        authority=u.authority,
        delegate=u.delegate,
        sub_account_id=u.sub_account_id,
        perps=perps,
        spot=spot,
        orders=orders,
        next_order_id=u.next_order_id,
        settled_perp_pnl=u.settled_perp_pnl,
        total_deposits=u.total_deposits,
        total_withdraws=u.total_withdraws,
        raw=u,
    )


def token_amount(scaled_balance: int, cumulative_interest: int, decimals: int,
                 is_borrow: bool = False) -> int:
    """Token amount of a scaled spot balance given the market's cumulative interest (1e10).

    Deposits round down and borrows round up, as the program does (integer arithmetic, unlike
    driftpy's float division). The cumulative interest lives in the SpotMarket account.
    """
    precision_decrease = 10 ** (19 - decimals)
    product = scaled_balance * cumulative_interest
    if is_borrow:
        return -(-product // precision_decrease)
    return product // precision_decrease


@dataclass(frozen=True)
class Fill:
    """A fill derived from two position reads."""

    base_filled: int  # signed: > 0 bought, < 0 sold
    quote_delta: int  # change of quote_asset_amount (fee-inclusive)
    avg_price: int | None  # 1e6; None when nothing filled
    fee_inclusive: bool  # True when avg_price came from quote_asset_amount


def fill_from_delta(before: PerpPositionView, after: PerpPositionView) -> Fill:
    """Filled base and average price between two reads of the same market's position."""
    if before.market_index != after.market_index:
        raise ValueError("positions are for different markets")
    filled = after.base_asset_amount - before.base_asset_amount
    quote_delta = after.quote_asset_amount - before.quote_asset_amount
    if filled == 0:
        return Fill(0, quote_delta, None, False)
    grew_same_side = (before.base_asset_amount == 0 or
                      (before.base_asset_amount > 0) == (filled > 0)) and \
        (after.base_asset_amount > 0) == (filled > 0)
    if grew_same_side:
        entry_delta = after.quote_entry_amount - before.quote_entry_amount
        return Fill(filled, quote_delta, _price(entry_delta, filled), False)
    return Fill(filled, quote_delta, _price(quote_delta, filled), True)
