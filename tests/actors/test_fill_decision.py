"""The fill tracker's rule: an order is never declared over while it can still trade."""

from __future__ import annotations

import pykka
from hypothesis import given
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from actors.fill_tracker import _decision, _Open
from actors.messages import TrackedOrder
from venue.auction import LONG, SHORT
from venue.positions import OrderView, PerpPositionView, UserSnapshot

AUTHORITY = Pubkey.from_string("11111111111111111111111111111112")
BASE = 2_000_000_000
MAX_SLOT, MAX_TS = 1_000, 50_000


def tracked(direction: int = LONG, held: int = 0) -> _Open:
    order = TrackedOrder(AUTHORITY, 0, 0, direction, BASE, PerpPositionView(0, held),
                         MAX_SLOT, MAX_TS, deadline=1e12)
    return _Open(order, pykka.ThreadingFuture())


def user(position: int, open_orders: tuple[int, ...] = (), direction: int = LONG) -> UserSnapshot:
    orders = {oid: OrderView(oid, 0, BASE, 0, 0, direction, False, "Open")
              for oid in open_orders}
    return UserSnapshot(AUTHORITY, AUTHORITY, 0, perps={0: PerpPositionView(
        0, position, quote_asset_amount=-position * 150 // 1000,
        quote_entry_amount=-position * 150 // 1000)}, orders=orders)


def test_a_whole_fill_is_filled_at_once() -> None:
    result = _decision(tracked(), user(BASE), MAX_SLOT - 5, MAX_TS - 3)
    assert result is not None and (result.state, result.base_filled) == ("filled", BASE)


def test_an_order_not_yet_placed_waits_until_its_last_slot_has_passed() -> None:
    assert _decision(tracked(), user(0), MAX_SLOT, MAX_TS + 100) is None
    result = _decision(tracked(), user(0), MAX_SLOT + 1, MAX_TS + 100)
    assert result is not None and result.state == "expired" and result.order_id is None


def test_a_placed_order_waits_until_the_chain_clock_passes_its_max_ts() -> None:
    assert _decision(tracked(), user(0, (7,)), MAX_SLOT + 3, MAX_TS) is None
    result = _decision(tracked(), user(0, (7,)), MAX_SLOT + 3, MAX_TS + 1)
    assert result is not None and (result.state, result.order_id) == ("expired", 7)


def test_a_partial_fill_is_final_only_once_the_rest_can_no_longer_trade() -> None:
    assert _decision(tracked(), user(BASE // 2, (3,)), MAX_SLOT + 2, MAX_TS) is None
    result = _decision(tracked(), user(BASE // 2), MAX_SLOT + 1, MAX_TS)
    assert result is not None and (result.state, result.base_filled) == ("partial", BASE // 2)


def test_another_market_or_side_does_not_keep_an_order_alive() -> None:
    other_side = user(0, (4,), direction=SHORT)
    result = _decision(tracked(LONG), other_side, MAX_SLOT + 1, MAX_TS)
    assert result is not None and result.state == "expired"


def test_a_missing_account_is_expired_only_past_the_last_slot() -> None:
    assert _decision(tracked(), None, MAX_SLOT, MAX_TS) is None
    result = _decision(tracked(), None, MAX_SLOT + 1, MAX_TS)
    assert result is not None and result.state == "expired"


@given(slot=st.integers(MAX_SLOT - 20, MAX_SLOT + 20),
       unix_ts=st.integers(MAX_TS - 20, MAX_TS + 20) | st.none(),
       filled=st.integers(0, BASE), placed=st.booleans(), short=st.booleans())
def test_never_over_while_it_can_still_trade(slot: int, unix_ts: int | None, filled: int,
                                             placed: bool, short: bool) -> None:
    direction = SHORT if short else LONG
    sign = -1 if short else 1
    item = tracked(direction)
    result = _decision(item, user(sign * filled, (9,) if placed else (), direction),
                       slot, unix_ts)
    can_trade = slot <= MAX_SLOT or (placed and (unix_ts is None or unix_ts <= MAX_TS))
    if filled >= BASE:
        assert result is not None and result.state == "filled"
    elif can_trade:
        assert result is None  # it may still fill: no fallback, no second order
    else:
        assert result is not None
        assert result.state == ("partial" if filled else "expired")
        assert result.base_filled == filled
