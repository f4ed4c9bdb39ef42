"""Emergency stop: every path blocked; stop-and-flatten lets only its own reduce-only closes."""

from __future__ import annotations

import itertools

import pytest

from security.emergency_stop import (
    NO_STOP,
    FlattenTicket,
    OrderIntent,
    OrderKind,
    OrderOrigin,
    StopMode,
    StopState,
    decide,
    flatten_ticket,
)

STOP = StopState(StopMode.STOP, "s1")
FLATTEN = StopState(StopMode.STOP_AND_FLATTEN, "s2")
SIGNAL_ORIGINS = [o for o in OrderOrigin if o is not OrderOrigin.FLATTEN]
ALL_SIGNAL_INTENTS = [
    OrderIntent(origin, kind, reduce_only)
    for origin, kind, reduce_only in itertools.product(SIGNAL_ORIGINS, OrderKind, (False, True))
]


def _flatten(ticket: FlattenTicket | None, reduce_only: bool = True) -> OrderIntent:
    return OrderIntent(OrderOrigin.FLATTEN, OrderKind.CLOSE, reduce_only, ticket)


@pytest.mark.parametrize("intent", ALL_SIGNAL_INTENTS, ids=repr)
def test_no_stop_allows_every_path(intent: OrderIntent) -> None:
    assert decide(NO_STOP, NO_STOP, intent).allowed


@pytest.mark.parametrize("intent", ALL_SIGNAL_INTENTS, ids=repr)
@pytest.mark.parametrize(
    ("global_stop", "wallet_stop", "reason"),
    [
        (STOP, NO_STOP, "global_emergency_stop"),
        (NO_STOP, STOP, "wallet_emergency_stop"),
        (FLATTEN, NO_STOP, "global_emergency_stop"),
        (NO_STOP, FLATTEN, "wallet_emergency_stop"),
        (STOP, FLATTEN, "global_emergency_stop"),
    ],
)
def test_any_stop_blocks_every_path_even_reduce_only(
    intent: OrderIntent, global_stop: StopState, wallet_stop: StopState, reason: str
) -> None:
    decision = decide(global_stop, wallet_stop, intent)
    assert not decision.allowed and decision.reason == reason


def test_flatten_orders_of_the_active_stop_pass() -> None:
    assert decide(NO_STOP, FLATTEN, _flatten(flatten_ticket(FLATTEN, "wallet"))).allowed
    assert decide(FLATTEN, NO_STOP, _flatten(flatten_ticket(FLATTEN, "global"))).allowed


def test_flatten_must_be_reduce_only_close() -> None:
    ticket = flatten_ticket(FLATTEN, "wallet")
    assert not decide(NO_STOP, FLATTEN, _flatten(ticket, reduce_only=False)).allowed
    opening = OrderIntent(OrderOrigin.FLATTEN, OrderKind.OPEN, True, ticket)
    assert decide(NO_STOP, FLATTEN, opening).reason == "flatten_order_not_reduce_only_close"
    assert not decide(NO_STOP, FLATTEN, _flatten(None)).allowed


def test_signal_close_with_stolen_ticket_is_refused() -> None:
    ticket = flatten_ticket(FLATTEN, "wallet")
    close = OrderIntent(OrderOrigin.WEBHOOK, OrderKind.CLOSE, True, ticket)
    assert decide(NO_STOP, FLATTEN, close).reason == "wallet_emergency_stop"


def test_stale_or_wrong_scope_ticket_is_refused() -> None:
    old = flatten_ticket(StopState(StopMode.STOP_AND_FLATTEN, "s-old"), "wallet")
    assert decide(NO_STOP, FLATTEN, _flatten(old)).reason == "flatten_ticket_stale"
    global_ticket = flatten_ticket(FLATTEN, "global")
    assert decide(NO_STOP, FLATTEN, _flatten(global_ticket)).reason == "flatten_ticket_stale"


def test_plain_stop_beats_flatten() -> None:
    ticket = flatten_ticket(FLATTEN, "wallet")
    assert decide(STOP, FLATTEN, _flatten(ticket)).reason == "global_emergency_stop"
    g_ticket = flatten_ticket(FLATTEN, "global")
    assert decide(FLATTEN, STOP, _flatten(g_ticket)).reason == "wallet_emergency_stop"


def test_flatten_after_stop_cleared_is_refused() -> None:
    ticket = flatten_ticket(FLATTEN, "wallet")
    assert decide(NO_STOP, NO_STOP, _flatten(ticket)).reason == "flatten_without_active_stop"


def test_flatten_state_needs_an_id_and_tickets_need_flatten() -> None:
    with pytest.raises(ValueError):
        StopState(StopMode.STOP_AND_FLATTEN)
    with pytest.raises(ValueError):
        flatten_ticket(STOP, "wallet")
    with pytest.raises(ValueError):
        flatten_ticket(FLATTEN, "galaxy")
