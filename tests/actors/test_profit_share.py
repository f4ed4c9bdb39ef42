"""ProfitShareActor on the real database: a profitable subscriber close records the creator's
share once, a losing one records nothing, and a payment recorded before a worker died is
resolved from the chain (a stand-in legacy_executor answers) instead of being sent again."""

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

from actors.messages import ReadSignature, SendTransaction, SubscriberClosed
from actors.profit_share import ProfitShareActor
from actors.services import Services
from sandbox.server import SandboxServer
from storage.bot_leases import acquire
from storage.bots import insert_bot
from storage.copy_trading import publish_bot
from storage.profit_shares import Share, get_share, share_for_trade
from storage.trades import NewTrade, open_trade
from storage.wallets import insert_wallet
from supervision import ChildSpec, Refusal, SupervisedActor, Supervisor, request
from tests.actors.conftest import ASK_S, SLOT_MS, running
from trading.profit_share import IouSchedule
from venue.tx_status import TxState, TxVerdict

SOL = 10**9  # base units
USD = 10**6  # quote units
ENTRY = (SOL, -150 * USD)  # a 1 SOL long entered at 150 (base, quote entry amount)


class StandInExecutor(SupervisedActor):
    """Registered as `legacy_executor`: answers signature reads with `verdict`, records all."""

    def __init__(self, verdict: TxVerdict, seen: list[Any], asked: Event) -> None:
        super().__init__()
        self._verdict = verdict
        self._seen = seen
        self._asked = asked

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ReadSignature | SendTransaction):
            self._seen.append(message)
            if len(self._seen) >= 3:
                self._asked.set()
            if isinstance(message, ReadSignature):
                return self._verdict
            raise RuntimeError("the stand-in sends nothing")
        return super().on_receive(message)


class Copying:
    """A published source bot and a subscriber bot (own wallets, own lease holder)."""

    def __init__(self, services: Services) -> None:
        self.services = dataclasses.replace(services, holder=f"ps-test-{uuid.uuid4().hex}")
        self.db = services.db
        self.wallets = [str(Keypair().pubkey()) for _ in range(2)]
        for wallet in self.wallets:
            insert_wallet(self.db, address=wallet, agent_public_key=str(Keypair().pubkey()),
                          legacy_envelope="not-a-real-envelope")
        self.source, self.subscriber = str(uuid.uuid4()), str(uuid.uuid4())
        self._bot(self.source, self.wallets[0], None)
        self.published = publish_bot(self.db, trading_bot_id=self.source,
                                     creator_wallet_address=self.wallets[0],
                                     profit_share_percent=Decimal(10), ring=services.ring)
        self._bot(self.subscriber, self.wallets[1], self.published.id)

    def _bot(self, bot_id: str, wallet: str, source: str | None) -> None:
        insert_bot(self.db, bot_id=bot_id, wallet_address=wallet, name="profit share tests",
                   market="SOL-PERP", market_index=0, leverage=Decimal(5),
                   max_position_size=Decimal(500), webhook_secret_hash=None,
                   policy_hmac="unused", source_published_bot_id=source)

    def close(self) -> str:
        """A filled closing trade of the subscriber; its id."""
        trade_id = open_trade(self.db, NewTrade(self.subscriber, None, self.wallets[1],
                                                "SOL-PERP", "short", SOL, True, "swift"))
        assert self.db.execute("UPDATE bot_trades SET status = 'completed' WHERE id = %s",
                               (trade_id,)) == 1
        return trade_id

    def actor(self, services: Services | None = None) -> pykka.ActorRef[Any]:
        return ProfitShareActor.start(services=services or self.services, tick_s=0.1,
                                      schedule=IouSchedule(interval_s=0.1, ttl_s=3600))

    def remove(self) -> None:
        bots = [self.source, self.subscriber]
        self.db.execute("DELETE FROM pending_profit_shares WHERE subscriber_bot_id = %s",
                        (self.subscriber,))
        self.db.execute("DELETE FROM bot_leases WHERE bot_id = ANY(%s)", (bots,))
        self.db.execute("DELETE FROM bot_trades WHERE trading_bot_id = ANY(%s)", (bots,))
        self.db.execute("DELETE FROM trade_refusals WHERE trading_bot_id = ANY(%s)", (bots,))
        self.db.execute("DELETE FROM trading_bots WHERE id = %s", (self.subscriber,))
        self.db.execute("DELETE FROM published_bots WHERE id = %s", (self.published.id,))
        self.db.execute("DELETE FROM trading_bots WHERE id = %s", (self.source,))
        self.db.execute("DELETE FROM wallets WHERE address = ANY(%s)", (self.wallets,))


@pytest.fixture
def copying(services: Services) -> Iterator[Copying]:
    """A Copying; its shares, trades, leases, bots and wallets are removed after the test."""
    made = Copying(services)
    try:
        yield made
    finally:
        made.remove()


def settled(copying: Copying, share_id: str, sandbox: SandboxServer) -> Share:
    """The share once it is no longer pending/sending (its row read again each sandbox slot)."""
    clock = sandbox.exchange.clock
    for _ in range(int(ASK_S * 1000 / SLOT_MS)):
        share = get_share(copying.db, share_id)
        assert share is not None
        if share.status not in ("pending", "sending"):
            return share
        clock.wait_for_slot(clock.slot + 1, ASK_S)
    raise AssertionError(f"share {share_id} not settled within {ASK_S:g} s")


def test_profitable_close_records_the_creators_share_once(copying: Copying) -> None:
    """A creator is owed percent x realised PnL, once per close however often it is told."""
    trade = copying.close()
    with running(copying.actor()) as actor:
        share_id = request(actor, SubscriberClosed(trade, *ENTRY, SOL, 165 * USD), ASK_S)
        replay = request(actor, SubscriberClosed(trade, *ENTRY, SOL, 500 * USD), ASK_S)
    assert share_id is not None and replay == share_id
    share = share_for_trade(copying.db, trade)
    assert share is not None and share.id == share_id
    assert (share.amount, share.realized_pnl, share.profit_share_percent) == \
        (Decimal("1.5"), Decimal(15), Decimal(10))
    assert (share.subscriber_bot_id, share.published_bot_id, share.creator_wallet_address) == \
        (copying.subscriber, copying.published.id, copying.wallets[0])
    assert share.share_mac is not None  # a share without a valid MAC is never paid
    rows = copying.db.fetchone("SELECT count(*) AS n FROM pending_profit_shares"
                               " WHERE subscriber_bot_id = %s", (copying.subscriber,))
    assert rows is not None and rows["n"] == 1


def test_losing_close_or_an_opening_trade_records_nothing(copying: Copying) -> None:
    """A subscriber who lost owes nothing; a trade that is not a close is refused."""
    losing = copying.close()
    opening = open_trade(copying.db, NewTrade(copying.subscriber, None, copying.wallets[1],
                                              "SOL-PERP", "long", SOL, False, "swift"))
    with running(copying.actor()) as actor:
        assert request(actor, SubscriberClosed(losing, *ENTRY, SOL, 140 * USD), ASK_S) is None
        with pytest.raises(Refusal):
            request(actor, SubscriberClosed(opening, *ENTRY, SOL, 165 * USD), ASK_S)
    assert share_for_trade(copying.db, losing) is None
    assert share_for_trade(copying.db, opening) is None


@pytest.mark.parametrize("state", [TxState.LANDED, TxState.PENDING])
def test_payment_recorded_by_a_dead_worker_is_never_sent_again(
        copying: Copying, state: TxState, sandbox: SandboxServer) -> None:
    """A payment recorded before a crash is asked about, not re-sent: landed means paid."""
    trade = copying.close()
    with running(copying.actor()) as actor:  # records it; unleased, so nothing is claimed
        share_id = request(actor, SubscriberClosed(trade, *ENTRY, SOL, 165 * USD), ASK_S)
    signature = str(Keypair().sign_message(b"payment"))
    assert copying.db.execute(
        "UPDATE pending_profit_shares SET status = 'sending', claimed_by = 'dead-worker',"
        " claimed_until = now() - interval '1 minute', inflight_signature = %s,"
        " inflight_last_valid_block_height = 1000000000 WHERE id = %s",
        (signature, share_id)) == 1
    assert acquire(copying.db, copying.subscriber, copying.services.holder, 300.0) is not None
    seen: list[Any] = []
    share: Share | None
    asked = Event()
    root = Supervisor.start(children=[ChildSpec("legacy_executor", StandInExecutor, kwargs={
        "verdict": TxVerdict(state), "seen": seen, "asked": asked})])
    with running(root):
        services = dataclasses.replace(copying.services, root=root)
        with running(copying.actor(services)):
            if state is TxState.LANDED:
                share = settled(copying, share_id, sandbox)
            else:
                assert asked.wait(ASK_S)  # asked again on later passes, never sent
                share = get_share(copying.db, share_id)
    assert {type(m) for m in seen} == {ReadSignature}
    assert all(m.signature == signature for m in seen)
    assert share is not None and share.attempts == 0
    if state is TxState.LANDED:
        assert (share.status, share.paid_tx_signature) == ("paid", signature)
        paid = copying.db.fetchone("SELECT signature FROM profit_share_payments"
                                   " WHERE share_id = %s", (share_id,))
        assert paid is not None and paid["signature"] == signature
    else:
        assert share.status in ("pending", "sending") and share.paid_tx_signature is None
        assert share.inflight_signature == signature
