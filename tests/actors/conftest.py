"""Actor-level fixtures: one sandbox, one migrated database and one small supervision tree per
test session; each test starts the actor it is about and talks to it through its messages.

The shared tree holds what the actors under test reach by name (actors.services.NamedActor):
the legacy executor (RPC failover, reads), venue_state (slot clock, batched reads), the fill
tracker and an empty `bots` supervisor. It is not the daemon's tree: no HTTP, no bots, no
lease keeper, no health monitor (the tests play the health monitor's probes themselves).
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pykka
import pytest
import requests
from solders.keypair import Keypair

from actors import venue_state
from actors.bot import bot_child_name
from actors.fill_tracker import FillTracker
from actors.legacy_executor import ExecutorClient, LegacyExecutor
from actors.messages import Now
from actors.services import Services
from actors.venue_state import VenueState, VenueStateClient
from config import load_settings
from sandbox.server import SandboxServer
from security.server_key import ServerKeyRing
from storage.bots import insert_bot
from storage.database import Database
from storage.migrations import migrate
from storage.trades import NewTrade, open_trade
from storage.wallets import insert_wallet
from supervision import (
    ChildSpec,
    Ready,
    Restart,
    StartChild,
    SupervisedActor,
    Supervisor,
    Whereis,
    request,
)
from tests import pg
from venue.profiles import VenueProfile, load_profile

SLOT_MS = 100  # the sandbox's slot: an auction of 10 slots is over within about a second
ASK_S = 10.0  # every ask of a test waits at most this long
HTTP_S = 5.0


# --- the venue ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """The session's sandbox (100 ms slots); faults a test sets are cleared by `faults`."""
    server = SandboxServer("127.0.0.1", 0, seed=11, slot_ms=SLOT_MS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Faults:
    """The sandbox's fault knobs (POST /sandbox/faults), each change starting from none."""

    def __init__(self, url: str) -> None:
        self._url = f"{url}/sandbox/faults"

    def set(self, **knobs: Any) -> None:
        response = requests.post(self._url, json={"clear": True, **knobs}, timeout=HTTP_S)
        assert response.status_code == 200, response.text

    def clear(self) -> None:
        response = requests.delete(self._url, timeout=HTTP_S)
        assert response.status_code == 200, response.text


@pytest.fixture
def faults(sandbox: SandboxServer) -> Iterator[Faults]:
    """Set sandbox faults; all cleared after the test (the sandbox is shared)."""
    knobs = Faults(sandbox.url)
    knobs.clear()
    try:
        yield knobs
    finally:
        knobs.clear()


def funded(sandbox: SandboxServer, quote: float = 1_000.0) -> Keypair:
    """A new authority with a funded User (sub-account 0) and its SignedMsgUserOrders."""
    keypair = Keypair()
    response = requests.post(f"{sandbox.url}/sandbox/faucet", timeout=HTTP_S,
                             json={"authority": str(keypair.pubkey()), "quote": quote})
    assert response.status_code == 200, response.text
    return keypair


def rpc_calls(sandbox: SandboxServer, method: str) -> int:
    """JSON-RPC calls of `method` the sandbox answered so far (primary and backup)."""
    stats = requests.get(f"{sandbox.url}/sandbox/stats", timeout=HTTP_S).json()
    return int(stats["rpc_calls"].get(method, 0))


@pytest.fixture(scope="session")
def profile(sandbox: SandboxServer) -> VenueProfile:
    """The sandbox profile on the session's sandbox, backup RPC included, at its slot time."""
    loaded = load_profile({"VENUE": "sandbox", "RPC_BACKUP_URL": sandbox.backup_rpc_url},
                          sandbox_url=sandbox.url)
    return dataclasses.replace(loaded, slot_time_ms=SLOT_MS)


# --- the database ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def actor_db() -> Iterator[Database]:
    """One migrated database on the session's embedded PostgreSQL, for every actor test."""
    database = Database(pg.fresh_database(), size=8)
    migrate(database)
    try:
        yield database
    finally:
        database.close()


@dataclasses.dataclass(frozen=True)
class BotRow:
    """A wallet and a bot row, for trade rows to hang off (the send fence marks trades)."""

    db: Database
    bot_id: str
    wallet: str

    def new_trade(self, base_amount: int, market: str = "SOL-PERP") -> str:
        """A pending trade row (what a bot opens before its order leaves); its id."""
        return open_trade(self.db, NewTrade(self.bot_id, None, self.wallet, market, "long",
                                            base_amount, False, "swift"))


@pytest.fixture(scope="session")
def bot_row(actor_db: Database) -> BotRow:
    wallet = str(Keypair().pubkey())
    insert_wallet(actor_db, address=wallet, agent_public_key=str(Keypair().pubkey()),
                  legacy_envelope="not-a-real-envelope")
    bot_id = str(uuid.uuid4())
    insert_bot(actor_db, bot_id=bot_id, wallet_address=wallet, name="actor tests",
               market="SOL-PERP", market_index=0, leverage=Decimal(5),
               max_position_size=Decimal(500), webhook_secret_hash=None, policy_hmac="unused")
    return BotRow(actor_db, bot_id, wallet)


# --- the shared tree ---------------------------------------------------------------------------


@contextlib.contextmanager
def running(ref: pykka.ActorRef[Any]) -> Iterator[pykka.ActorRef[Any]]:
    """An actor started by the test, stopped (and waited for) when the block ends."""
    try:
        assert request(ref, Ready(), ASK_S)
        yield ref
    finally:
        with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
            ref.stop(block=True, timeout=ASK_S)


@pytest.fixture(scope="session")
def services(profile: VenueProfile, actor_db: Database) -> Iterator[Services]:
    """Services whose root is a small tree: legacy_executor, venue_state, fill_tracker, bots."""
    ring = ServerKeyRing({"k1": secrets.token_bytes(32)}, "k1")
    shared = Services(load_settings({}), actor_db, "actor-tests-admin-token", profile, ring)
    children = [
        ChildSpec("legacy_executor", LegacyExecutor, kwargs={"profile": profile}),
        ChildSpec("venue_state", VenueState, kwargs={
            "executor": ExecutorClient(shared), "profile": profile, "clock": shared.clock}),
        ChildSpec("fill_tracker", FillTracker, kwargs={
            "executor": ExecutorClient(shared), "venue": VenueStateClient(shared),
            "profile": profile}),
        ChildSpec("bots", Supervisor),
    ]
    # Its clock is read once, now, and not calibrated again 1.5 s later (the profile already
    # has the sandbox's slot time): tests that count the sandbox's reads must not see a
    # calibration read land among theirs. test_venue_state starts VenueStates of its own.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(venue_state, "CALIBRATE_AFTER_S", ())
        root = Supervisor.start(children=children)
        request(root, Ready(), ASK_S)  # answered once every child's on_start has run
    with running(root):
        shared.root = root
        request(child(shared, "venue_state"), Now(), ASK_S)
        yield shared


def child(services: Services, name: str) -> pykka.ActorRef[Any]:
    """A child of the shared tree by name."""
    assert services.root is not None
    return request(services.root, Whereis(name), ASK_S)


class StandInBot(SupervisedActor):
    """A bot's place in the `bots` supervisor (where dispatch looks bots up), for tests of the
    actors that tell bots things: hands each message of `kinds` to `record`."""

    def __init__(self, record: Callable[[Any], None], kinds: tuple[type, ...]) -> None:
        super().__init__()
        self._record, self._kinds = record, kinds

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, self._kinds):
            self._record(message)
            return None
        return super().on_receive(message)


def stand_in_bot(services: Services, bot_id: str, record: Callable[[Any], None],
                 *kinds: type) -> None:
    """Start a StandInBot for `bot_id` in the shared tree's `bots` supervisor."""
    spec = ChildSpec(bot_child_name(bot_id), StandInBot, restart=Restart.TEMPORARY,
                     kwargs={"record": record, "kinds": kinds})
    request(child(services, "bots"), StartChild(spec), ASK_S)
