"""Profit-share arithmetic and the IOU schedule (pure functions, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trading.profit_share import (
    Close,
    IouSchedule,
    Retry,
    Void,
    closed_base,
    from_quote_decimal,
    realized_pnl,
    share_amount,
    to_quote_decimal,
)

SOL = 10**9  # one unit of base
USD = 10**6  # one dollar of quote / price


def long_at(price_usd: int, base: int = SOL) -> tuple[int, int]:
    """(base, quote_entry_amount) of a long opened at a whole-dollar price (Drift: long pays)."""
    return base, -(base * price_usd * USD // SOL)


def short_at(price_usd: int, base: int = SOL) -> tuple[int, int]:
    """(base, quote_entry_amount) of a short (negative base, positive entry quote)."""
    return -base, base * price_usd * USD // SOL


def test_full_close_of_a_long_in_profit() -> None:
    base, quote = long_at(150, 2 * SOL)
    assert realized_pnl(Close(base, quote, 2 * SOL, 160 * USD)) == 20 * USD


def test_full_close_of_a_short_in_profit() -> None:
    base, quote = short_at(150, 2 * SOL)
    assert realized_pnl(Close(base, quote, 2 * SOL, 140 * USD)) == 20 * USD


def test_losses_are_negative_and_pay_nothing() -> None:
    base, quote = long_at(150)
    pnl = realized_pnl(Close(base, quote, SOL, 149 * USD))
    assert pnl == -1 * USD
    assert share_amount(pnl, Decimal("10")) == 0
    s_base, s_quote = short_at(150)
    assert realized_pnl(Close(s_base, s_quote, SOL, 151 * USD)) == -1 * USD


def test_break_even_and_empty_fills_realise_zero() -> None:
    base, quote = long_at(150)
    assert realized_pnl(Close(base, quote, SOL, 150 * USD)) == 0
    assert realized_pnl(Close(base, quote, 0, 160 * USD)) == 0
    assert realized_pnl(Close(0, 0, SOL, 160 * USD)) == 0
    assert share_amount(0, Decimal("50")) == 0


def test_partial_close_uses_the_filled_size_only() -> None:
    base, quote = long_at(150, 4 * SOL)
    assert realized_pnl(Close(base, quote, SOL, 160 * USD)) == 10 * USD
    assert realized_pnl(Close(base, quote, SOL // 4, 160 * USD)) == 10 * USD // 4


def test_a_flip_counts_only_the_part_that_closed() -> None:
    base, quote = long_at(150, SOL)
    close = Close(base, quote, 3 * SOL, 160 * USD)  # sold 3: closed 1, opened a 2 short
    assert closed_base(close) == SOL
    assert realized_pnl(close) == 10 * USD


def test_entry_is_the_average_of_the_position() -> None:
    # 1 SOL at 100 and 1 SOL at 200: entry 150, closing half at 160 realises 10
    base, quote = 2 * SOL, -(100 + 200) * USD
    assert realized_pnl(Close(base, quote, SOL, 160 * USD)) == 10 * USD


def test_pnl_rounds_down_against_the_creator() -> None:
    # entry 150.000000 per SOL; exit 150.000001 on 0.5 SOL -> pnl 0.0000005 -> 0
    base, quote = long_at(150)
    assert realized_pnl(Close(base, quote, SOL // 2, 150 * USD + 1)) == 0
    # a loss of half a unit floors to -1 (never rounded up into a profit)
    assert realized_pnl(Close(base, quote, SOL // 2, 150 * USD - 1)) == -1
    # short with an entry that does not divide evenly: 1/3 of 100 units of entry quote
    assert realized_pnl(Close(-3, 100, 1, 0 + 1)) == 33  # 33.33.. - 0.000000001 -> 33


def test_share_rounds_down_and_honours_fractional_percent() -> None:
    assert share_amount(999, Decimal("10")) == 99
    assert share_amount(1_000_000, Decimal("12.5")) == 125_000
    assert share_amount(7, Decimal("33.33")) == 2  # 2.3331 -> 2
    assert share_amount(1, Decimal("99.99")) == 0
    assert share_amount(10 * USD, Decimal("100")) == 10 * USD


def test_share_refuses_a_percent_out_of_range() -> None:
    with pytest.raises(ValueError):
        share_amount(100, Decimal("100.01"))
    with pytest.raises(ValueError):
        share_amount(100, Decimal("-1"))


def test_a_fill_price_must_be_positive() -> None:
    base, quote = long_at(150)
    with pytest.raises(ValueError):
        realized_pnl(Close(base, quote, SOL, 0))


def test_quote_decimals_round_trip_exactly() -> None:
    assert to_quote_decimal(1_234_567) == Decimal("1.234567")
    assert from_quote_decimal(Decimal("1.234567")) == 1_234_567
    assert from_quote_decimal(to_quote_decimal(1)) == 1
    with pytest.raises(ValueError):
        from_quote_decimal(Decimal("0.0000001"))


NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def test_the_default_schedule_is_the_seed_plans() -> None:
    schedule = IouSchedule()
    assert (schedule.interval_s, schedule.max_attempts) == (300.0, 50)
    assert schedule.expires_at(NOW) == NOW + timedelta(days=7)


def test_retry_every_interval_until_the_tries_run_out() -> None:
    schedule = IouSchedule()
    expires = schedule.expires_at(NOW)
    assert schedule.after_failure(1, expires, NOW, "rpc_unreachable") == Retry(300.0)
    assert schedule.after_failure(49, expires, NOW, "x") == Retry(300.0)
    step = schedule.after_failure(50, expires, NOW, "InsufficientCollateral")
    assert isinstance(step, Void) and step.reason == (
        "gave up after 50 attempts: InsufficientCollateral")


def test_void_after_the_ttl_even_with_tries_left() -> None:
    schedule = IouSchedule()
    expires = schedule.expires_at(NOW)
    assert schedule.give_up(3, expires, expires - timedelta(seconds=1), None) is None
    step = schedule.give_up(3, expires, expires, "rpc_unreachable")
    assert step == Void("expired unpaid after 3 attempts: rpc_unreachable")
