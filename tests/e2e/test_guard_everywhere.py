"""One guard before every signature that can move funds: a stop set after the order (or the
IOU) was under way still holds the signature that would follow it. Real tree, real sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from solders.hash import Hash

import actors.order_exec as order_exec
from actors.profit_share_payment import ExecutorPayer
from actors.services import Services
from storage.emergency_stops import set_global_stop
from storage.profit_shares import share_for_trade
from tests.e2e.stack import Stack
from tests.e2e.test_profit_share import (
    WAIT_S,
    fast_profit_share,
    profitable_round_trip,
    share_waiter,
    wallet_quote,
    withdrawals,
)
from venue.legacy_tx import BuiltTx
from venue.tx_sender import SentTx

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"


@pytest.fixture
def stack(database_url: str, tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Stack with a fast IOU schedule; a callable param gives the profit_share actor's
    extra kwargs, a dict param the settings overrides."""
    param = getattr(request, "param", {})
    extra = param if callable(param) else (lambda _s: {})
    overrides = {} if callable(param) else dict(param)
    with Stack(database_url, tmp_path, changes=fast_profit_share(extra), **overrides) as running:
        yield running


class StopFirstPayer(ExecutorPayer):
    """The real payer; on its first payment the operator sets a global stop just before, so the
    guard inside the build step (right before signing) is what must hold it."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.calls = 0

    def send(self, build: Callable[[Hash], BuiltTx]) -> SentTx:
        """Set the stop on the first call, then send as the real payer does."""
        self.calls += 1
        if self.calls == 1:
            set_global_stop(self._services.db, flatten=False, reason="drill")
        return super().send(build)


PAYERS: dict[str, StopFirstPayer] = {}


def stop_first(services: Services) -> dict[str, Any]:
    """Actor kwargs: the StopFirstPayer."""
    PAYERS["stop"] = StopFirstPayer(services)
    return {"payer": PAYERS["stop"]}


@pytest.mark.parametrize("stack", [stop_first], indirect=True)
def test_a_global_stop_holds_a_due_profit_share_payment(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack)
    share = share_for_trade(stack.db, close["id"])
    assert share is not None
    with share_waiter(stack) as waiter:
        held = waiter.wait(share.id, WAIT_S, until=lambda r: r["status"] == "pending"
                           and r["last_error"] == "refused: global_emergency_stop")
        assert held["paid_tx_signature"] is None and held["inflight_signature"] is None
        assert withdrawals(stack, follower["agent"]) == 0
        assert wallet_quote(stack, source["wallet"]) == before
        refusals = stack.db.fetchall("SELECT reason, origin, kind FROM trade_refusals"
                                     " WHERE trading_bot_id = %s", (follower["bot_id"],))
        assert {"reason": "global_emergency_stop", "origin": "profit_share",
                "kind": "withdraw"} in refusals
        stack.cli("estop", "clear", "--global")
        paid = waiter.wait(share.id, WAIT_S)
    assert paid["status"] == "paid"  # the IOU waited out the stop; it was not voided
    assert withdrawals(stack, follower["agent"]) == 1
    assert wallet_quote(stack, source["wallet"]) - before == int(paid["amount"] * 10**6)


@pytest.mark.parametrize("stack", [{"SWIFT_MAX_RETRIES_BEFORE_FALLBACK": "0"}], indirect=True)
def test_a_legacy_fallback_that_starts_after_a_stop_signs_nothing(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_status=503)  # Swift refuses: the order falls back on-chain
    original = order_exec._after_swift

    def stop_then_record(ctx: Any, *args: Any) -> Any:
        """The operator's stop lands between the Swift answer and the fallback."""
        set_global_stop(stack.db, flatten=False, reason="drill")
        return original(ctx, *args)

    monkeypatch.setattr(order_exec, "_after_swift", stop_then_record)
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    (trade,) = stack.trades(signal_id)
    assert trade["status"] == "failed"
    assert trade["error_message"] == "refused: global_emergency_stop"
    assert trade["execution_method"] == "legacy"  # it was the fallback that was refused
    assert trade["swift_status"] == "fallback"  # Swift was really tried first
    counters = stack.sandbox_stats(bot["agent"])
    assert counters.get("transactions_received", 0) == 0  # and nothing was signed on-chain
    assert stack.position(bot["agent"]) == 0
    reasons = [r["reason"] for r in stack.db.fetchall(
        "SELECT reason FROM trade_refusals WHERE trading_bot_id = %s", (bot["bot_id"],))]
    assert reasons == ["global_emergency_stop"]
