"""signal_flow.execute_signal's sizing, on stand-ins for the venue and the order path (pure
logic): a close that finds nothing to close says so only from an account read made after the
signal was claimed, so a read from before its previous order filled never ends a close."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors import signal_flow
from actors.order_exec import OrderOutcome, OrderRequest, OrderStatus
from storage.bots import Bot
from storage.signals import SignalRow
from venue.perp_market import MarketState
from venue.positions import PerpPositionView, UserSnapshot
from venue.snapshot import MarketSnapshot

HELD = 10_030_000_000  # 10.03 base
CLOSE = {"action": "sell", "contracts": "1", "new_position": "0", "prev_position": "1",
         "kind": "close", "target_side": "flat"}
OPEN = {"action": "buy", "contracts": "1", "new_position": "1", "prev_position": "0",
        "kind": "open", "target_side": "long"}


class Venue:
    """Answers each User read with the next account of `reads`; records each `fresh_after`."""

    def __init__(self, *reads: int) -> None:
        self._reads = list(reads)
        self.asked: list[float] = []

    def user(self, authority: Pubkey, sub_account_id: int,
             fresh_after: float = 0.0) -> UserSnapshot:
        self.asked.append(fresh_after)
        held = self._reads[len(self.asked) - 1]
        return UserSnapshot(authority, authority, sub_account_id,
                            perps={0: PerpPositionView(0, base_asset_amount=held)})


def run(monkeypatch: pytest.MonkeyPatch, parsed: dict[str, Any],
        venue: Venue) -> list[OrderRequest]:
    """execute_signal for one bot with `venue`; the orders it sent."""
    sent: list[OrderRequest] = []

    def execute(_ctx: Any, req: OrderRequest) -> OrderOutcome:
        sent.append(req)
        return OrderOutcome(str(uuid.uuid4()), OrderStatus.COMPLETED, "swift",
                            req.order.base_amount, 100_000_000)

    monkeypatch.setattr(signal_flow, "execute_order", execute)
    ctx = SimpleNamespace(venue=venue, last_sent=1.0, pause=lambda *_: None,
                          services=SimpleNamespace(profile=SimpleNamespace(
                              quote_spot_market_index=0)))
    now = datetime.now(UTC)
    bot = Bot(str(uuid.uuid4()), "W", "b", "SOL-PERP", 0, Decimal(5), Decimal(500), 0, True,
              None, None, True, None, True, True, now)
    market = MarketState(0, 10_000_000, 10_000_000, Pubkey.default(), 100_000_000, 1000)
    snapshot = MarketSnapshot(1, int(now.timestamp()), 400.0, market)
    row = SignalRow(str(uuid.uuid4()), "webhook", parsed, None, now)
    signal_flow.execute_signal(ctx, bot, row, Keypair(), snapshot, snapshot)  # type: ignore
    return sent


def test_a_close_that_reads_flat_reads_again_now_and_closes_what_is_held(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    venue = Venue(0, HELD)  # the first answer predates the fill of the bot's last order
    asked_at = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=signal_flow.__name__):
        sent = run(monkeypatch, CLOSE, venue)
    assert "only on a fresh read" in caplog.text  # a stale read is told, not hidden
    assert [req.order.base_amount for req in sent] == [HELD]
    assert sent[0].order.reduce_only and sent[0].order.side == "short"
    assert venue.asked[0] == 1.0 and venue.asked[1] >= asked_at  # a read made after the claim


def test_a_close_says_nothing_to_close_only_after_the_second_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    venue = Venue(0, 0)
    assert run(monkeypatch, CLOSE, venue) == []
    assert len(venue.asked) == 2


@pytest.mark.parametrize(("parsed", "held", "orders"), [(CLOSE, HELD, 1), (OPEN, 0, 0)])
def test_other_signals_read_the_account_once(monkeypatch: pytest.MonkeyPatch,
                                              parsed: dict[str, Any], held: int,
                                              orders: int) -> None:
    """A close with something to close, and an open (which finds no collateral here: no order,
    and no second read either)."""
    venue = Venue(held)
    assert len(run(monkeypatch, parsed, venue)) == orders
    assert venue.asked == [1.0]
