"""Trade sizing: from a signal and one bot's limits and account to the orders to send.

Every bot mirrors the strategy's relative moves with its own money. An open (or the opening
half of a flip) takes the bot's full size: the lesser of its max position (USD) and its free
collateral times its leverage (the dynamic leverage cap). An increase grows the bot's position
by the strategy's relative growth, a reduce shrinks it likewise, both capped; a close sends a
reduce-only order for the position actually held (read from the venue, never from memory).
An open that cannot reach the market's minimum order size pauses the bot with a reason. A close
smaller than the minimum is marked dust: Swift refuses it, so it goes on-chain.

All amounts are integers in the venue's precision: base 1e9, price and quote 1e6.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from driftpy.constants.numeric_constants import BASE_PRECISION

from trading.alerts import Signal


@dataclass(frozen=True)
class MarketRules:
    """A market's order size rules, in base precision."""

    min_order_size: int
    step_size: int


@dataclass(frozen=True)
class BotLimits:
    """One bot's configured exposure."""

    leverage: Decimal
    max_position_usd: Decimal


@dataclass(frozen=True)
class AccountState:
    """What the venue says about the bot's account right now."""

    free_collateral_usd: Decimal
    position_base: int  # signed, base precision


@dataclass(frozen=True)
class PlannedOrder:
    """One order to send."""

    side: str  # "long" | "short"
    base_amount: int
    reduce_only: bool
    purpose: str  # open | increase | reduce | close | flip_close | flip_open
    dust: bool = False  # below the market minimum: must go on-chain


@dataclass(frozen=True)
class SizingPlan:
    """The orders for one signal, or why there are none (and whether to pause the bot)."""

    orders: tuple[PlannedOrder, ...]
    note: str
    pause_reason: str | None = None


def plan_orders(signal: Signal, limits: BotLimits, market: MarketRules, account: AccountState,
                oracle_price: Decimal) -> SizingPlan:
    """The orders that bring this bot in line with the signal."""
    if oracle_price <= 0:
        raise ValueError("oracle price must be positive")
    held = account.position_base
    held_side = "long" if held > 0 else "short" if held < 0 else "flat"
    kind = signal.kind
    if kind == "unknown":  # no position data: go to the signal's side unless already there
        kind = "open" if held == 0 else "flip" if held_side != signal.target_side else "hold"
    if kind == "hold":
        return SizingPlan((), f"already {held_side}; the alert carries no position to mirror")
    if kind == "close" or (kind == "reduce" and held == 0):
        return _close(held, market, "close")
    if kind == "flip" or (held != 0 and held_side != signal.target_side):
        return _flip(signal.target_side, held, limits, market, account, oracle_price)
    if kind == "open" or held == 0:
        return _open(signal.target_side, limits, market, account, oracle_price, "open")
    assert signal.new_position is not None and signal.prev_position is not None
    ratio = (abs(signal.new_position) - abs(signal.prev_position)) / abs(signal.prev_position)
    if kind == "reduce":
        amount = _to_step(Decimal(abs(held)) * -ratio, market)
        if amount <= 0:
            return SizingPlan((), "reduction rounds to zero")
        side = "short" if held > 0 else "long"
        return SizingPlan((PlannedOrder(side, min(amount, abs(held)), True, "reduce",
                                        dust=amount < market.min_order_size),), "reduce")
    cap = _full_size(limits, account, oracle_price, market) - abs(held)
    amount = min(_to_step(Decimal(abs(held)) * ratio, market), max(cap, 0))
    if amount < market.min_order_size:
        return SizingPlan((), f"increase of {amount} base is below the minimum order "
                              f"{market.min_order_size} after the position and leverage caps")
    return SizingPlan((PlannedOrder(held_side, amount, False, "increase"),), "increase")


def _to_step(amount: Decimal, market: MarketRules) -> int:
    whole = int(amount.to_integral_value(rounding=ROUND_DOWN))
    return whole - whole % market.step_size if market.step_size > 0 else whole


def _full_size(limits: BotLimits, account: AccountState, price: Decimal,
               market: MarketRules) -> int:
    notional = min(limits.max_position_usd, account.free_collateral_usd * limits.leverage)
    return _to_step(max(notional, Decimal(0)) / price * BASE_PRECISION, market)


def _close(held: int, market: MarketRules, purpose: str) -> SizingPlan:
    if held == 0:
        return SizingPlan((), "no position to close")
    side = "short" if held > 0 else "long"
    order = PlannedOrder(side, abs(held), True, purpose, dust=abs(held) < market.min_order_size)
    return SizingPlan((order,), purpose)


def _flip(side: str, held: int, limits: BotLimits, market: MarketRules, account: AccountState,
          price: Decimal) -> SizingPlan:
    """Close what is held, then open the other side. The open is an estimate (the margin the
    close frees: notional / leverage) that the executor re-plans from the account after the
    close; the close is never held back by it, even when the open cannot be afforded."""
    closing = _close(held, market, "flip_close").orders
    freed = Decimal(abs(held)) * price / BASE_PRECISION / limits.leverage
    after = AccountState(account.free_collateral_usd + freed, 0)
    opening = _open(side, limits, market, after, price, "flip_open")
    if not closing:
        return SizingPlan(opening.orders, opening.note, opening.pause_reason)
    estimate = opening.orders[0].base_amount if opening.orders else 0
    return SizingPlan((*closing, PlannedOrder(side, estimate, False, "flip_open")), "flip")


def plan_open(side: str, limits: BotLimits, market: MarketRules, account: AccountState,
              price: Decimal) -> SizingPlan:
    """An opening order sized from a fresh account (the second half of a flip)."""
    return _open(side, limits, market, account, price, "flip_open")


def _open(side: str, limits: BotLimits, market: MarketRules, account: AccountState,
          price: Decimal, purpose: str) -> SizingPlan:
    amount = _full_size(limits, account, price, market)
    if amount < market.min_order_size:
        reason = (f"insufficient funds: {account.free_collateral_usd} USD free collateral at "
                  f"{limits.leverage}x buys {amount} base, below the minimum order "
                  f"{market.min_order_size}")
        return SizingPlan((), reason, pause_reason=reason)
    return SizingPlan((PlannedOrder(side, amount, False, purpose),), purpose)
