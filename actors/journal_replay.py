"""JournalReplay: brings alerts journaled during a database outage into the database.

Every TICK_S, off its mailbox: starts the embedded PostgreSQL again if its postmaster died
(only when `run` started it: no DATABASE_URL), refreshes the webhook's secret cache every
CACHE_REFRESH_S while the database answers, and replays the journal (storage.journal) when
it holds records, then wakes the bots whose signals are waiting. It runs once at start, so a
journal left by a previous run on this STATE_DIR is replayed before alerts queue behind it.
An unreachable database is one warning line when it starts and one info line when it ends;
nothing here raises into the mailbox, so an outage of any length restarts no actor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from actors.dispatch import wake_backlogs
from actors.messages import ReplayJournal
from actors.services import Services
from storage.journal import DATABASE_UNREACHABLE, OutageIntake, Replayed, replay
from supervision import Outcome, SupervisedActor

log = logging.getLogger(__name__)

TICK_S = 1.0
CACHE_REFRESH_S = 5.0


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _Done:
    outcome: Outcome
    refreshed_at: float | None


class JournalReplay(SupervisedActor):
    """Replays the alert journal, keeps the secret cache fresh, revives the embedded server."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services
        self._refreshed_at = float("-inf")
        self._busy = False
        self._again = False
        self._db_down = False

    def on_start(self) -> None:
        if self._services.outage is not None:  # in-process test stacks have no journal
            self.actor_ref.tell(_Tick())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            self._run()
            self.send_later(TICK_S, _Tick())
            return None
        if isinstance(message, ReplayJournal):
            self._run()
            return None
        if isinstance(message, _Done):
            return self._done(message)
        return super().on_receive(message)

    def _run(self) -> None:
        outage = self._services.outage
        if outage is None:
            return
        if self._busy:
            self._again = True
            return
        self._busy = True
        refresh = time.monotonic() - self._refreshed_at >= CACHE_REFRESH_S
        refreshed_at = time.monotonic() if refresh else None
        self.run_in_background(lambda: self._work(outage, refresh),
                               lambda outcome: _Done(outcome, refreshed_at))

    def _work(self, outage: OutageIntake, refresh: bool) -> Replayed | None:
        if outage.revive_server is not None:
            outage.revive_server()
        db = self._services.db
        if refresh:
            outage.secrets.refresh(db)
        if not outage.journal.pending():
            return None
        replayed = replay(db, outage.journal, self._services.settings.signal_stale_s)
        if replayed.committed:
            wake_backlogs(self._services)
        return replayed

    def _done(self, done: _Done) -> None:
        self._busy = False
        error = done.outcome.error
        assert self._services.outage is not None  # nothing runs without one
        journal = self._services.outage.journal
        if isinstance(error, DATABASE_UNREACHABLE):
            if not self._db_down:
                log.warning("database unreachable (%s): authenticated alerts go to the journal"
                            " in %s", type(error).__name__, journal.directory)
            self._db_down = True
        elif error is not None:
            log.error("journal replay failed: %s", type(error).__name__)
        else:
            if done.refreshed_at is not None:
                self._refreshed_at = done.refreshed_at
            if self._db_down:
                log.info("database answers again")
                self._db_down = False
            replayed: Replayed | None = done.outcome.value
            if replayed is not None and replayed.total:
                log.info("journal replayed: %d committed, %d expired, %d duplicate(s), "
                         "%d rejected", replayed.committed, replayed.expired,
                         replayed.duplicates, replayed.rejected)
            if journal.pending():  # journaled while it replayed
                self._again = True
        if self._again:
            self._again = False
            self._run()
