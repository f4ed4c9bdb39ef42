"""LeaseKeeper through its life cycle (start, renewal ticks, clean stop) against a real PostgreSQL:
which bots it takes, that its leases outlive their TTL, that bots taken from a dead holder run
their backlog, and that a worker over its fair share hands its surplus on. Stand-in bots under
the shared `bots` supervisor record what the keeper tells them (ProcessSignal, HandOver)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from gevent.event import AsyncResult
from solders.keypair import Keypair

from actors.bot import bot_child_name
from actors.lease_keeper import LeaseKeeper
from actors.messages import HandOver, ProcessSignal
from actors.services import ProcessRole, Services
from config import load_settings
from sandbox.server import SandboxServer
from storage import bot_shares
from storage.bot_leases import acquire
from storage.bots import insert_bot
from storage.database import Database
from storage.migrations import migrate
from storage.signals import record_signal
from storage.wallets import insert_wallet
from supervision import TerminateChild, request
from tests import pg
from tests.actors.conftest import ASK_S, child, running, stand_in_bot
from tests.daemon import until

TTL = {"BOT_LEASE_TTL_S": "3"}  # the least the setting allows: a renewal every second
WAIT_S = 15.0  # how long a test waits for a renewal's effect to show
Lease = tuple[str, int, bool]  # holder, epoch, live


@pytest.fixture(scope="module")
def lease_db() -> Iterator[Database]:
    """A database of its own: the keeper takes (ALL) or counts (WORKER) every bot of its database,
    so the session's bots stay out of its reach and its fair shares are exact."""
    database = Database(pg.fresh_database(), size=4)
    migrate(database)
    yield database  # pytest runs the rest even when a test failed
    database.close()



class Fleet:
    """One test's bots (own wallet, own holder id, a TTL of 3 s) and their stand-ins."""

    def __init__(self, services: Services, db: Database) -> None:
        self.services = dataclasses.replace(services, db=db, settings=load_settings(TTL),
                                            holder=f"lease-test-{uuid.uuid4().hex}", resolved={})
        self.db = db
        self.inbox: dict[str, AsyncResult] = {}
        self.wallet = str(Keypair().pubkey())
        self.bot_ids: list[str] = []
        insert_wallet(db, address=self.wallet, agent_public_key=str(Keypair().pubkey()),
                      legacy_envelope="not-a-real-envelope")

    def _told(self, bot_id: str, message: Any) -> None:
        self.inbox.setdefault(bot_id, AsyncResult()).set(message)

    def bot(self, holder: str | None = None, lease_s: float = 300.0) -> str:
        """A bot row with its stand-in; leased to `holder` for `lease_s` when given."""
        bot_id = str(uuid.uuid4())
        self.bot_ids.append(bot_id)
        insert_bot(self.db, bot_id=bot_id, wallet_address=self.wallet, name="lease tests",
                   market="SOL-PERP", market_index=0, leverage=Decimal(5),
                   max_position_size=Decimal(500), webhook_secret_hash=None,
                   policy_hmac="unused", drift_subaccount_id=len(self.bot_ids))
        if holder is not None:
            assert acquire(self.db, bot_id, holder, lease_s) is not None
        stand_in_bot(self.services, bot_id, functools.partial(self._told, bot_id),
                     HandOver, ProcessSignal)
        return bot_id

    def keeper(self, role: ProcessRole = ProcessRole.ALL,
               holder: str | None = None) -> contextlib.AbstractContextManager[Any]:
        """A LeaseKeeper of this fleet's process (or of another `holder`), in `role`."""
        services = dataclasses.replace(self.services, role=role,
                                       holder=holder or self.services.holder)
        return running(LeaseKeeper.start(services=services))

    def lease(self, bot_id: str) -> Lease | None:
        """The bot's lease row: holder, epoch and whether it is live (None: never leased)."""
        row = self.db.fetchone("SELECT holder, epoch, expires_at > now() AS live FROM bot_leases"
                               " WHERE bot_id = %s", (bot_id,))
        return None if row is None else (row["holder"], row["epoch"], row["live"])

    def expiry(self, bot_id: str) -> Any:
        row = self.db.fetchone("SELECT expires_at FROM bot_leases WHERE bot_id = %s", (bot_id,))
        assert row is not None, bot_id
        return row["expires_at"]

    def past(self, at: Any) -> bool:
        """Has the database's clock passed `at`?"""
        row = self.db.fetchone("SELECT now() > %s AS past", (at,))
        return row is not None and bool(row["past"])

    def told(self, bot_id: str) -> Any:
        """What the bot's stand-in was told (gevent.Timeout if nothing within WAIT_S)."""
        return self.inbox.setdefault(bot_id, AsyncResult()).get(timeout=WAIT_S)

    def remove(self) -> None:
        bots = child(self.services, "bots")
        for bot_id in self.bot_ids:
            request(bots, TerminateChild(bot_child_name(bot_id)), ASK_S)
        self.db.execute("DELETE FROM webhook_signals WHERE trading_bot_id = ANY(%s)",
                        (self.bot_ids,))
        self.db.execute("DELETE FROM trading_bots WHERE id = ANY(%s)", (self.bot_ids,))
        self.db.execute("DELETE FROM wallets WHERE address = %s", (self.wallet,))
        self.db.execute("DELETE FROM node_workers")


@pytest.fixture
def fleet(services: Services, lease_db: Database) -> Iterator[Fleet]:
    made = Fleet(services, lease_db)
    yield made
    made.remove()



def test_start_takes_free_and_dead_holders_bots_but_never_a_live_daemons(fleet: Fleet) -> None:
    """Before any claim a daemon must hold its bots, and never one another live daemon holds."""
    free = fleet.bot()
    dead = fleet.bot(holder="died-daemon", lease_s=-60.0)
    foreign = fleet.bot(holder="live-daemon")
    with fleet.keeper():  # Ready is answered once on_start has run
        me = fleet.services.holder
        assert fleet.lease(free) == (me, 1, True)
        assert fleet.lease(dead) == (me, 2, True)  # a new holder: a new epoch (the send fence)
        assert fleet.lease(foreign) == ("live-daemon", 1, True)
    assert fleet.lease(foreign) == ("live-daemon", 1, True)


def test_leases_outlive_their_ttl_and_a_clean_stop_frees_them_at_once(
        fleet: Fleet, sandbox: SandboxServer) -> None:
    """A running daemon keeps its bots past the TTL; a stopped one lets a successor take them."""
    bot = fleet.bot()
    me = fleet.services.holder
    with fleet.keeper():
        late = fleet.bot()  # created after the start: taken at a renewal
        until(sandbox, lambda: fleet.lease(late) == (me, 1, True), "the late bot taken")
        renewed = fleet.expiry(bot)
        until(sandbox, lambda: fleet.past(renewed), "the TTL of that renewal over")
        assert fleet.lease(bot) == (me, 1, True)  # renewed again, at the same epoch
        held_until = fleet.expiry(bot)
    # stop(block=True) returns before on_exit has run: wait for the release, which cuts the
    # leases short (they would otherwise go stale on their own a TTL later)
    until(sandbox, lambda: fleet.expiry(bot) < held_until and
          [fleet.lease(bot), fleet.lease(late)] == [(me, 1, False)] * 2, "both leases released")
    with fleet.keeper(holder="successor"):  # free now: a successor takes them as it starts
        assert fleet.lease(bot) == ("successor", 2, True)
        assert fleet.lease(late) == ("successor", 2, True)


def test_bots_taken_from_a_dead_holder_at_a_renewal_run_its_backlog(fleet: Fleet) -> None:
    """An alert accepted while the holder died must run once its bot is taken over."""
    orphan = fleet.bot(holder="died-daemon")
    record_signal(fleet.db, orphan, f"lease-test-{uuid.uuid4().hex}", (), "tradingview", None, {})
    with fleet.keeper():
        assert fleet.lease(orphan) == ("died-daemon", 1, True)
        assert not fleet.inbox
        # its holder dies: the lease runs out (now, rather than in 300 s)
        fleet.db.execute("UPDATE bot_leases SET expires_at = now() WHERE bot_id = %s", (orphan,))
        assert fleet.told(orphan) == ProcessSignal("backlog")
        assert fleet.lease(orphan) == (fleet.services.holder, 2, True)


def test_a_worker_over_its_fair_share_hands_the_surplus_to_the_neediest_worker(
        fleet: Fleet) -> None:
    """Bots must spread over the workers: a worker over its share offers the rest to the idlest."""
    bots = sorted(fleet.bot() for _ in range(4))
    me = fleet.services.holder
    with fleet.keeper(ProcessRole.WORKER):
        assert [fleet.lease(b) for b in bots] == [(me, 1, True)] * 4  # alone: a share of 4
        assert not fleet.inbox
        bot_shares.heartbeat(fleet.db, "joined-worker", 300.0)  # a second worker: shares of 2
        surplus = [fleet.told(b) for b in bots[2:]]
        assert surplus == [HandOver("joined-worker")] * 2
        assert not any(b in fleet.inbox and fleet.inbox[b].ready() for b in bots[:2])
        assert [fleet.lease(b) for b in bots] == [(me, 1, True)] * 4  # the bots move them
