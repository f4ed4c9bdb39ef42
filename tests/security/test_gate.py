"""The combined pre-trade gate: stop first, then policy; flatten orders skip the policy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from security.emergency_stop import (
    NO_STOP,
    OrderIntent,
    OrderKind,
    OrderOrigin,
    StopMode,
    StopState,
    flatten_ticket,
)
from security.gate import pre_trade_check
from security.policy import BotPolicy, compute_policy_hmac
from tests.security.helpers import ring

KEYS = ring("k-new").policy_keys()
POLICY = BotPolicy("bot-1", "SOL-PERP", 3, "250")
STORED = compute_policy_hmac(KEYS["k-new"], "k-new", POLICY)
FLATTEN = StopState(StopMode.STOP_AND_FLATTEN, "stop-7")


def _check(intent: OrderIntent, policy: BotPolicy = POLICY, **stops: StopState):
    return pre_trade_check(
        global_stop=stops.get("global_stop", NO_STOP),
        wallet_stop=stops.get("wallet_stop", NO_STOP),
        intent=intent,
        policy_keys=KEYS,
        policy=policy,
        stored_policy_hmac=STORED,
        current_key_id="k-new",
    )


@pytest.mark.parametrize("origin", [o for o in OrderOrigin if o is not OrderOrigin.FLATTEN])
def test_every_path_checks_policy(origin: OrderOrigin) -> None:
    intent = OrderIntent(origin, OrderKind.OPEN, False)
    assert _check(intent).allowed
    tampered = _check(intent, replace(POLICY, max_position_size="250000"))
    assert not tampered.allowed and tampered.reason == "policy_hmac_mismatch"
    close = OrderIntent(origin, OrderKind.CLOSE, True)
    assert not _check(close, replace(POLICY, leverage=20)).allowed


def test_stop_is_checked_before_policy() -> None:
    intent = OrderIntent(OrderOrigin.WEBHOOK, OrderKind.OPEN, False)
    stop = StopState(StopMode.STOP, "s")
    decision = _check(intent, replace(POLICY, leverage=9), wallet_stop=stop)
    assert decision.reason == "wallet_emergency_stop"


def test_flatten_passes_even_with_tampered_policy() -> None:
    intent = OrderIntent(OrderOrigin.FLATTEN, OrderKind.CLOSE, True,
                         flatten_ticket(FLATTEN, "wallet"))
    assert _check(intent, replace(POLICY, leverage=9), wallet_stop=FLATTEN).allowed
    assert not _check(intent, wallet_stop=StopState(StopMode.STOP, "s")).allowed
