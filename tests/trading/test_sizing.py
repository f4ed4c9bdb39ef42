"""Sizing: full-size opens under the leverage cap, mirrored increases/reduces, closes, flips."""

from decimal import Decimal

from trading.alerts import parse_alert
from trading.sizing import AccountState, BotLimits, MarketRules, plan_orders

MARKET = MarketRules(min_order_size=10_000_000, step_size=10_000_000)  # 0.01 base
LIMITS = BotLimits(leverage=Decimal(2), max_position_usd=Decimal(1000))
PRICE = Decimal(100)


def sig(action: str, contracts: str, position: str):
    return parse_alert(f"order {action} @ {contracts} filled on SOLUSD. "
                       f"New strategy position is {position}".encode())


def test_open_takes_the_max_position_when_collateral_allows() -> None:
    plan = plan_orders(sig("buy", "1", "1"), LIMITS, MARKET,
                       AccountState(Decimal(10_000), 0), PRICE)
    (order,) = plan.orders
    assert (order.side, order.base_amount, order.reduce_only) == ("long", 10 * 10**9, False)


def test_open_is_capped_by_free_collateral_times_leverage_and_rounded_to_step() -> None:
    plan = plan_orders(sig("sell", "1", "-1"), LIMITS, MARKET,
                       AccountState(Decimal("100.555"), 0), PRICE)
    (order,) = plan.orders
    assert order.side == "short" and order.base_amount == 2_010_000_000  # 201.11 USD -> 2.01


def test_insufficient_funds_pauses_the_bot_with_a_reason() -> None:
    plan = plan_orders(sig("buy", "1", "1"), LIMITS, MARKET, AccountState(Decimal("0.4"), 0),
                       PRICE)
    assert plan.orders == () and plan.pause_reason and "insufficient funds" in plan.pause_reason


def test_close_sends_reduce_only_for_the_position_actually_held() -> None:
    plan = plan_orders(sig("sell", "3", "0"), LIMITS, MARKET,
                       AccountState(Decimal(0), 1_234_000_000), PRICE)
    (order,) = plan.orders
    assert (order.side, order.base_amount, order.reduce_only, order.dust) == (
        "short", 1_234_000_000, True, False)


def test_a_dust_close_is_marked_for_on_chain() -> None:
    plan = plan_orders(sig("buy", "1", "0"), LIMITS, MARKET, AccountState(Decimal(0), -3_000),
                       PRICE)
    (order,) = plan.orders
    assert order.side == "long" and order.base_amount == 3_000 and order.dust


def test_close_with_nothing_held_sends_nothing() -> None:
    plan = plan_orders(sig("sell", "1", "0"), LIMITS, MARKET, AccountState(Decimal(50), 0),
                       PRICE)
    assert plan.orders == () and "no position" in plan.note


def test_increase_mirrors_the_strategy_growth_within_the_cap() -> None:
    held = 4 * 10**9  # 400 USD of a 1000 USD max
    plan = plan_orders(sig("buy", "1", "2"), LIMITS, MARKET, AccountState(Decimal(10_000), held),
                       PRICE)
    (order,) = plan.orders
    assert (order.side, order.base_amount, order.reduce_only) == ("long", 4 * 10**9, False)
    capped = plan_orders(sig("buy", "3", "4"), LIMITS, MARKET,
                         AccountState(Decimal(10_000), held), PRICE)
    assert capped.orders[0].base_amount == 6 * 10**9  # only up to the 1000 USD max


def test_reduce_mirrors_the_strategy_shrink() -> None:
    plan = plan_orders(sig("sell", "1", "3"), LIMITS, MARKET,
                       AccountState(Decimal(0), 8 * 10**9), PRICE)
    (order,) = plan.orders
    assert (order.side, order.base_amount, order.reduce_only) == ("short", 2 * 10**9, True)


def test_flip_closes_then_opens_the_other_side_with_the_freed_margin() -> None:
    held = -5 * 10**9  # short 500 USD at 2x: 250 USD of margin comes back
    plan = plan_orders(sig("buy", "2", "1"), LIMITS, MARKET, AccountState(Decimal(0), held),
                       PRICE)
    close, open_ = plan.orders
    assert (close.side, close.base_amount, close.reduce_only, close.purpose) == (
        "long", 5 * 10**9, True, "flip_close")
    assert (open_.side, open_.base_amount, open_.reduce_only, open_.purpose) == (
        "long", 5 * 10**9, False, "flip_open")


def test_unknown_kind_goes_to_the_signal_side_or_holds() -> None:
    alert = parse_alert(b'{"action": "buy", "contracts": 1}')
    long_held = AccountState(Decimal(10_000), 10**9)
    assert plan_orders(alert, LIMITS, MARKET, long_held, PRICE).orders == ()
    short_held = AccountState(Decimal(10_000), -(10**9))
    assert [o.purpose for o in plan_orders(alert, LIMITS, MARKET, short_held, PRICE).orders] == [
        "flip_close", "flip_open"]


def test_a_flip_whose_open_cannot_be_afforded_still_closes() -> None:
    held = -5 * 10**9
    poor = BotLimits(leverage=Decimal(1), max_position_usd=Decimal(1000))
    tiny_market = MarketRules(min_order_size=100 * 10**9, step_size=10_000_000)
    plan = plan_orders(sig("buy", "2", "1"), poor, tiny_market, AccountState(Decimal(0), held),
                       PRICE)
    assert plan.pause_reason is None
    close, open_ = plan.orders
    assert (close.purpose, close.base_amount, close.reduce_only) == ("flip_close", 5 * 10**9, True)
    assert (open_.purpose, open_.base_amount) == ("flip_open", 0)  # re-planned after the close
