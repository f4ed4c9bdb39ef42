"""JournalReplay against the real database: alerts journaled on disk while PostgreSQL was
unreachable reach webhook_signals once it answers, each once, in arrival order, and their
bots are woken; an outage of any length neither loses them nor stops the actor."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import gevent
import psycopg2
import pytest
from gevent.queue import Queue
from gevent.server import StreamServer
from gevent.socket import AF_UNIX, SOCK_STREAM, socket
from solders.keypair import Keypair

from actors.bot import bot_child_name
from actors.journal_replay import JournalReplay
from actors.messages import ProcessSignal, ReplayJournal
from actors.services import Services
from storage.bots import insert_bot
from storage.database import Database
from storage.journal import Journal, JournalRecord, OutageIntake
from storage.secret_cache import SecretCache, secret_fingerprint
from storage.wallets import insert_wallet
from supervision import (
    Ready,
    TerminateChild,
    request,
)
from tests.actors.conftest import ASK_S, child, running, stand_in_bot


class Intake:
    """One test's bot (with its stand-in), its journal on disk and its own Services copy."""

    def __init__(self, services: Services, directory: Path) -> None:
        self.db = services.db
        self.journal = Journal(directory, 1024 * 1024, 3600.0)
        self.services = dataclasses.replace(
            services, outage=OutageIntake(self.journal, SecretCache()), resolved={},
            holder=f"journal-test-{uuid.uuid4().hex}")
        self.wallet = str(Keypair().pubkey())
        self.bot_id = str(uuid.uuid4())
        self.woken: Queue = Queue()
        insert_wallet(self.db, address=self.wallet, agent_public_key=str(Keypair().pubkey()),
                      legacy_envelope="not-a-real-envelope")
        insert_bot(self.db, bot_id=self.bot_id, wallet_address=self.wallet, name="journal tests",
                   market="SOL-PERP", market_index=0, leverage=Decimal(5),
                   max_position_size=Decimal(500), webhook_secret_hash=None, policy_hmac="unused")
        stand_in_bot(services, self.bot_id, self.woken.put, ProcessSignal)

    def journaled(self, count: int) -> list[str]:
        """Append `count` alerts of our bot, as the webhook does during an outage; their ids."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        for signal_id in ids:
            self.journal.append(JournalRecord(
                signal_id, self.bot_id, f"hash-{signal_id}", (), "webhook", '{"action": "buy"}',
                {"kind": "open"}, time.time(), secret_fingerprint(None)))
        return ids

    def stored(self) -> list[tuple[str, str]]:
        """(id, status) of our bot's signals in the database, in arrival order."""
        rows = self.db.fetchall("SELECT id, status FROM webhook_signals"
                                " WHERE trading_bot_id = %s ORDER BY seq", (self.bot_id,))
        return [(row["id"], row["status"]) for row in rows]

    def remove(self, services: Services) -> None:
        request(child(services, "bots"), TerminateChild(bot_child_name(self.bot_id)), ASK_S)
        self.db.execute("DELETE FROM webhook_signals WHERE trading_bot_id = %s", (self.bot_id,))
        self.db.execute("DELETE FROM trading_bots WHERE id = %s", (self.bot_id,))
        self.db.execute("DELETE FROM wallets WHERE address = %s", (self.wallet,))


@pytest.fixture
def intake(services: Services, tmp_path: Path) -> Iterator[Intake]:
    """An Intake; its stand-in, signals, bot and wallet are removed after the test."""
    made = Intake(services, tmp_path / "journal")
    try:
        yield made
    finally:
        made.remove(services)


class Gate:
    """A TCP door to the real PostgreSQL: shut, it hangs up on every connection (the database
    is unreachable); open, it forwards to the server's socket."""

    def __init__(self, db: Database) -> None:
        conn = psycopg2.connect(db.dsn)
        self._socket = f"{conn.info.host}/.s.PGSQL.{conn.info.port}"
        self._dbname, self._user = conn.info.dbname, conn.info.user
        conn.close()
        self.open = False
        self.refused = 0
        self._pipes: list[gevent.Greenlet] = []
        self._server = StreamServer(("127.0.0.1", 0), self._handle)
        self._server.start()

    def dsn(self) -> str:
        return (f"host=127.0.0.1 port={self._server.server_port} dbname={self._dbname}"
                f" user={self._user}")

    def _handle(self, client: Any, _address: Any) -> None:
        if not self.open:
            self.refused += 1
            client.close()
            return
        upstream = socket(AF_UNIX, SOCK_STREAM)
        upstream.connect(self._socket)
        self._pipes += [gevent.spawn(_pipe, client, upstream),
                        gevent.spawn(_pipe, upstream, client)]
        gevent.joinall(self._pipes[-2:], count=1)

    def close(self) -> None:
        self._server.stop()
        gevent.killall(self._pipes)


def _pipe(source: Any, target: Any) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        source.close()
        target.close()


def test_a_journal_left_on_disk_is_replayed_once_in_order_and_its_bot_woken(
        intake: Intake) -> None:
    """Alerts journaled before a restart must trade after it: committed once each, in order."""
    first = intake.journaled(3)  # left by a previous run on this STATE_DIR
    with running(JournalReplay.start(services=intake.services)) as actor:
        assert intake.woken.get(timeout=ASK_S) == ProcessSignal("backlog")
        assert intake.stored() == [(signal_id, "accepted") for signal_id in first]
        assert not intake.journal.pending()
        later = intake.journaled(2)  # journaled behind the first replay
        actor.tell(ReplayJournal())
        assert intake.woken.get(timeout=ASK_S) == ProcessSignal("backlog")
        assert intake.stored() == [(signal_id, "accepted") for signal_id in first + later]
    assert not list(intake.journal.directory.iterdir())


def test_alerts_journaled_during_an_outage_wait_on_disk_and_are_replayed_when_it_ends(
        intake: Intake) -> None:
    """A database outage must neither lose journaled alerts nor stop the actor replaying them."""
    gate = Gate(intake.db)
    outage_db = Database(gate.dsn(), size=2, connect_timeout_s=2, acquire_timeout_s=2.0)
    services = dataclasses.replace(intake.services, db=outage_db)
    try:
        ids = intake.journaled(2)
        with running(JournalReplay.start(services=services)) as actor:
            deadline = time.monotonic() + 3 * ASK_S
            while gate.refused < 3:  # three runs failed on the unreachable database
                assert time.monotonic() < deadline, "the actor stopped trying the database"
                assert request(actor, Ready(), ASK_S)
            assert intake.woken.empty() and intake.stored() == []
            assert intake.journal.pending()
            ids += intake.journaled(1)  # the webhook keeps journaling
            gate.open = True
            assert intake.woken.get(timeout=3 * ASK_S) == ProcessSignal("backlog")
            assert intake.stored() == [(signal_id, "accepted") for signal_id in ids]
            assert not intake.journal.pending()
            assert request(actor, Ready(), ASK_S)
    finally:
        outage_db.close()
        gate.close()
