"""What actors and HTTP handlers share: settings, the database, and the root of the tree."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import pykka
from gevent.event import Event

from actors.slot_clock import PublishedClock
from config import Settings
from security.server_key import ServerKeyRing
from storage.bot_leases import new_holder_id
from storage.database import Database
from storage.guard_rows import GuardQuery, GuardRows, open_trades_guarded
from storage.journal import OutageIntake
from storage.signals import SignalRow, claim_next_many
from storage.trades import NewTrade
from supervision import request, whereis
from supervision.coalesced import Coalesced
from venue.profiles import VenueProfile

ROWS_PER_STATEMENT = 100  # claims, or trade rows, batched into one statement


class ProcessRole(StrEnum):
    """What one process of a node does (`run --role`)."""

    ALL = "all"  # intake and execution in one process (WORKERS=0)
    INTAKE = "intake"  # webhook, manual trades, admin API: commits and announces, executes nothing
    WORKER = "worker"  # executes its fair share of the bots; serves no HTTP

    @property
    def executes(self) -> bool:
        """Does this process run bots (and own the venue clients)?"""
        return self is not ProcessRole.INTAKE

    @property
    def serves_http(self) -> bool:
        """Does this process run the webhook and admin listeners?"""
        return self is not ProcessRole.WORKER


@dataclass
class Services:
    """Handles passed to actors at construction; `root` is set once the tree is started."""

    settings: Settings
    db: Database
    admin_token: str
    profile: VenueProfile
    ring: ServerKeyRing
    root: pykka.ActorRef[Any] | None = None
    outage: OutageIntake | None = None  # the journal of alerts taken while the database is down
    holder: str = field(default_factory=new_holder_id)  # whose bot leases (storage.bot_leases)
    # set once on SIGTERM: no actor takes new work (a life-cycle fact, read-only to actors)
    stopping: Event = field(default_factory=Event)
    role: ProcessRole = ProcessRole.ALL
    # what another process needs in its environment to share this one's database, venue, keys
    peer_env: dict[str, str] = field(default_factory=dict)
    # the tree's named actors (NamedActor) and the bots' actors (actors.dispatch) as last
    # resolved: asked by name once per restart, not before every message
    resolved: dict[str, pykka.ActorRef[Any]] = field(default_factory=dict)
    # the slot clock as VenueState last read it (its one writer), for every actor to extrapolate
    clock: PublishedClock = field(default_factory=PublishedClock)

    @cached_property
    def claims(self) -> Coalesced[tuple[str, int | None], SignalRow | None]:
        """Claims of this process's bot actors, (bot id, lease epoch) -> the claimed signal:
        the claims that arrive while one statement runs share the next (a fan-out's hundreds
        of copies are claimed in a few statements, not one each)."""
        return Coalesced(lambda batch: claim_next_many(self.db, batch, self.holder),
                         most=ROWS_PER_STATEMENT, key=lambda claim: claim[0])

    @cached_property
    def trade_rows(self) -> Coalesced[tuple[NewTrade, GuardQuery],
                                      tuple[str, GuardRows] | Exception]:
        """Trade rows of this process's orders, each written with what its guard reads
        (storage.guard_rows), batched like `claims`; for an order that got no row, why
        (LeaseLost when it is fenced out)."""
        return Coalesced(lambda batch: open_trades_guarded(self.db, batch, self.holder),
                         most=ROWS_PER_STATEMENT, key=lambda order: order[0].bot_id)

    def auction_slots(self) -> int:
        """The Swift auction length: AUCTION_DURATION_SLOTS, else the venue profile's."""
        configured: int | None = self.settings.auction_duration_slots
        return configured if configured is not None else self.profile.auction_duration_slots


class NamedActor:
    """An actor of the tree reached by name: resolved through the supervisor once, and again
    whenever the reference it holds has stopped, so a restarted actor is found too."""

    def __init__(self, services: Services, name: str, timeout_s: float = 10.0) -> None:
        self._services = services
        self._name = name
        self._timeout_s = timeout_s

    def ref(self) -> pykka.ActorRef[Any]:
        """The actor's current reference (waits, within the timeout, across a restart)."""
        known = self._services.resolved.get(self._name)
        if known is not None and known.is_alive():
            return known
        assert self._services.root is not None, "the supervision tree is not started"
        ref = whereis(self._services.root, self._name, self._timeout_s)
        self._services.resolved[self._name] = ref
        return ref

    def ask(self, message: Any, timeout_s: float | None = None) -> Any:
        """Ask and wait for the answer, pending or not. An actor that stopped before it
        handled the message never acted on it: its successor is asked instead."""
        timeout_s = timeout_s or self._timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return request(self.ref(), message, max(0.0, deadline - time.monotonic()))
            except pykka.ActorDeadError:
                if time.monotonic() >= deadline:
                    raise

    def tell(self, message: Any) -> None:
        """Tell without waiting."""
        self.ref().tell(message)
