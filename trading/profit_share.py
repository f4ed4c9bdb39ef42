"""Profit-share arithmetic and the IOU schedule: plain integers, no I/O, exact rounding.

Realised PnL of a close is measured from the actual fill (size and average price) against the
position's entry before the close (`quote_entry_amount / base_asset_amount`, fee-exclusive, as
venue.positions.PerpPositionView gives it). Every division is exact (Fraction) and then floored,
so each rounding goes against the creator: the subscriber never pays for a rounding unit.

Units: base 1e9, prices and quote 1e6 (integers), percent a Decimal such as Decimal("10.00").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from driftpy.constants.numeric_constants import BASE_PRECISION, QUOTE_PRECISION

IOU_INTERVAL_S = 300.0
IOU_MAX_ATTEMPTS = 50
IOU_TTL_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Close:
    """A filled close (full or partial) of a perp position, as the venue reported it."""

    entry_base: int  # signed base of the position before the close (long > 0)
    entry_quote: int  # its quote_entry_amount (sign ignored: the cost of the open base)
    base_filled: int  # base the close order filled (sign ignored)
    fill_price: int  # average fill price, 1e6


def closed_base(close: Close) -> int:
    """The part of the fill that reduced the position (a flip's opening part is not PnL)."""
    return min(abs(close.base_filled), abs(close.entry_base))


def realized_pnl(close: Close) -> int:
    """Realised PnL of the closed part in quote units (1e6), floored.

    long: (exit - entry) * size; short: (entry - exit) * size. A flat position realises nothing.
    """
    if close.entry_base == 0 or close.base_filled == 0:
        return 0
    if close.fill_price <= 0:
        raise ValueError("fill price must be positive")
    size = closed_base(close)
    exit_value = Fraction(size * close.fill_price, BASE_PRECISION)
    entry_cost = Fraction(abs(close.entry_quote) * size, abs(close.entry_base))
    pnl = exit_value - entry_cost if close.entry_base > 0 else entry_cost - exit_value
    return math.floor(pnl)


def share_amount(pnl: int, percent: Decimal) -> int:
    """The creator's share in quote units: floor(pnl * percent / 100), nothing on pnl <= 0."""
    if not Decimal(0) <= percent <= Decimal(100):
        raise ValueError("profit share percent must be within 0..100")
    if pnl <= 0 or percent == 0:
        return 0
    return math.floor(Fraction(pnl) * Fraction(percent) / 100)


def to_quote_decimal(amount: int) -> Decimal:
    """Quote units to the NUMERIC(30, 6) value stored in pending_profit_shares."""
    return Decimal(amount) / QUOTE_PRECISION


def from_quote_decimal(value: Decimal) -> int:
    """The stored NUMERIC(30, 6) value back to integer quote units (exact)."""
    scaled = value * QUOTE_PRECISION
    if scaled != scaled.to_integral_value():
        raise ValueError("amount has more than 6 decimals")
    return int(scaled)


@dataclass(frozen=True)
class Retry:
    """Try again after `delay_s`."""

    delay_s: float


@dataclass(frozen=True)
class Void:
    """Give up: the IOU is released (the subscriber is not held hostage forever)."""

    reason: str


@dataclass(frozen=True)
class IouSchedule:
    """The IOU job: a try every 5 minutes, at most 50 tries or 7 days, then void."""

    interval_s: float = IOU_INTERVAL_S
    max_attempts: int = IOU_MAX_ATTEMPTS
    ttl_s: float = IOU_TTL_S

    def expires_at(self, created: datetime) -> datetime:
        """When an IOU created at `created` is voided if still unpaid."""
        return created + timedelta(seconds=self.ttl_s)

    def give_up(self, attempts: int, expires_at: datetime, now: datetime,
                last_error: str | None) -> Void | None:
        """Void before another try when the tries are used up or the IOU has expired."""
        why = f": {last_error}" if last_error else ""
        if attempts >= self.max_attempts:
            return Void(f"gave up after {attempts} attempts{why}"[:500])
        if now >= expires_at:
            return Void(f"expired unpaid after {attempts} attempts{why}"[:500])
        return None

    def after_failure(self, attempts: int, expires_at: datetime, now: datetime,
                      error: str) -> Retry | Void:
        """What follows a failed try, `attempts` counting it."""
        return self.give_up(attempts, expires_at, now, error) or Retry(self.interval_s)
