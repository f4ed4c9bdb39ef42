"""BotActor on the real database and sandbox: the per-bot mailbox runs its bot's accepted
signals one at a time, oldest first, only under this process's lease, and a stop waits for at
most the signal in hand. The bots are paused by an operator, so every signal ends `skipped`
(bot_paused) after the actor has claimed it and read the market: no wallet keys or grants."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pykka
import pytest
from gevent.event import Event
from solders.keypair import Keypair

from actors.bot import BotActor
from actors.messages import ProcessSignal, Quiesce
from actors.services import Services
from storage.bot_controls import pause_bot
from storage.bot_leases import acquire, holder_of
from storage.bots import insert_bot
from storage.signals import SignalWaiter, record_signal
from storage.wallets import insert_wallet
from supervision import request
from tests.actors.conftest import ASK_S, running

CLOSE_WHEN_FLAT = {"action": "sell", "contracts": "0", "new_position": "0",
                   "prev_position": "1", "kind": "close", "target_side": "flat"}


class PausedBot:
    """One operator-paused bot of one test (own wallet, own lease holder) and its signals."""

    def __init__(self, services: Services) -> None:
        self.db = services.db
        self.wallet = str(Keypair().pubkey())
        self.bot_id = str(uuid.uuid4())
        self.holder = f"bot-test-{uuid.uuid4().hex}"
        self.signal_ids: list[str] = []
        self._shared = services
        insert_wallet(self.db, address=self.wallet, agent_public_key=str(Keypair().pubkey()),
                      legacy_envelope="not-a-real-envelope")
        insert_bot(self.db, bot_id=self.bot_id, wallet_address=self.wallet, name="bot tests",
                   market="SOL-PERP", market_index=0, leverage=Decimal(5),
                   max_position_size=Decimal(500), webhook_secret_hash=None,
                   policy_hmac="unused")
        assert pause_bot(self.db, self.bot_id, "actor test", "operator") is not None

    def services(self) -> Services:
        """A copy of the shared Services with this bot's holder and a stopping flag of its own."""
        return dataclasses.replace(self._shared, holder=self.holder, stopping=Event())

    def signals(self, count: int) -> list[str]:
        """`count` accepted signals (close when flat), in arrival order; their ids."""
        made = [record_signal(self.db, self.bot_id, f"bot-test:{uuid.uuid4()}", (), "webhook",
                              None, CLOSE_WHEN_FLAT).signal_id for _ in range(count)]
        self.signal_ids += made
        return made

    def rows(self) -> list[dict[str, Any]]:
        """This bot's signals in arrival order: id, status, reason, processed_at."""
        return self.db.fetchall(
            "SELECT id, status, status_reason, processed_at FROM webhook_signals"
            " WHERE trading_bot_id = %s ORDER BY seq", (self.bot_id,))

    def statuses(self) -> list[str]:
        return [row["status"] for row in self.rows()]

    def wait_all(self, status: str) -> list[dict[str, Any]]:
        """Wait (NOTIFY, bounded) until every signal of the bot is final; the rows."""
        waiter = SignalWaiter(self.db.dsn)
        try:
            finals = waiter.wait(self.signal_ids, ASK_S)
        finally:
            waiter.close()
        assert set(finals.values()) == {status}, finals
        return self.rows()

    def remove(self) -> None:
        self.db.execute("DELETE FROM webhook_signals WHERE trading_bot_id = %s", (self.bot_id,))
        self.db.execute("DELETE FROM trading_bots WHERE id = %s", (self.bot_id,))
        self.db.execute("DELETE FROM wallets WHERE address = %s", (self.wallet,))


@pytest.fixture
def paused(services: Services) -> Iterator[PausedBot]:
    """A PausedBot; its signals, lease, bot row and wallet are removed after the test."""
    made = PausedBot(services)
    try:
        yield made
    finally:
        made.remove()


def start_bot(bot: PausedBot, services: Services | None = None) -> pykka.ActorRef[Any]:
    return BotActor.start(bot_id=bot.bot_id, services=services or bot.services())


def test_backlog_runs_each_signal_once_in_arrival_order(paused: PausedBot) -> None:
    """A bot's signals must finish in the order they arrived, each once, however it is woken."""
    first = paused.signals(3)  # a backlog, as a restart finds it: the start drains it
    with running(start_bot(paused)) as bot:
        later = paused.signals(2)
        for signal_id in later + later:  # woken twice for each: each still runs once
            bot.tell(ProcessSignal(signal_id))
        rows = paused.wait_all("skipped")
    assert [row["id"] for row in rows] == first + later
    assert {row["status_reason"] for row in rows} == {"bot_paused"}
    finished = [row["processed_at"] for row in rows]
    assert finished == sorted(finished) and len(set(finished)) == len(finished)


def test_bot_leased_elsewhere_claims_nothing_until_the_lease_is_free(paused: PausedBot) -> None:
    """Two daemons must never run one bot: only the lease holder claims its signals."""
    other = f"other-daemon-{uuid.uuid4().hex}"
    assert acquire(paused.db, paused.bot_id, other, 300.0) is not None
    [signal_id] = paused.signals(1)
    with running(start_bot(paused)) as bot:
        assert request(bot, ProcessSignal(signal_id), ASK_S) == 0
        assert paused.statuses() == ["accepted"]
        assert holder_of(paused.db, paused.bot_id) == other
        # the other daemon's lease runs out: the next wake-up here takes the bot and runs it
        paused.db.execute("UPDATE bot_leases SET expires_at = now() WHERE bot_id = %s",
                          (paused.bot_id,))
        assert request(bot, ProcessSignal(signal_id), ASK_S) == 1
    assert paused.statuses() == ["skipped"]
    assert holder_of(paused.db, paused.bot_id) == paused.holder


def test_stop_waits_for_at_most_the_signal_in_hand(paused: PausedBot) -> None:
    """A stop must not drain a bot's backlog: the rest waits, in order, for the restart."""
    signal_ids = paused.signals(5)
    services = paused.services()
    with running(start_bot(paused, services)) as bot:
        assert request(bot, Quiesce(), ASK_S) is True
        services.stopping.set()
        assert request(bot, ProcessSignal("after-stop"), ASK_S) == 0
        statuses = paused.statuses()
    done = statuses.count("skipped")
    assert 1 <= done <= 2, statuses  # the start's signal, and at most the one then in hand
    assert statuses == ["skipped"] * done + ["accepted"] * (5 - done)
    with running(start_bot(paused)):  # the restart runs what waited, oldest first
        rows = paused.wait_all("skipped")
    assert [row["id"] for row in rows] == signal_ids
    finished = [row["processed_at"] for row in rows]
    assert finished == sorted(finished)
