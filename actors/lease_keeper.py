"""LeaseKeeper: holds this daemon's per-bot leases, so one daemon executes a bot at a time.

At start, before the bots and the intake, it takes the lease of every bot that no other live
daemon holds (storage.bot_leases), then renews them every third of BOT_LEASE_TTL_S in one
statement, which also takes bots created since and bots whose holder died (their leases ran
out). Signals and retry jobs are claimed only under a live lease of ours, so a bot held elsewhere
is left alone here; when that changes, one log line says so. A renewal the database refuses is
logged and tried at the next tick (an outage must not crash-loop the tree); on a clean stop
the leases are released, so another daemon may take the bots at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors.dispatch import wake_backlogs
from actors.services import Services
from storage.bot_leases import ForeignHolder, acquire_all, foreign_holders, release_all
from supervision import Outcome, SupervisedActor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Renew:
    pass


@dataclass(frozen=True)
class _Renewed:
    outcome: Outcome


class LeaseKeeper(SupervisedActor):
    """Takes and renews the leases of this daemon's bots; see the module docstring."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services
        self._ttl_s: float = services.settings["BOT_LEASE_TTL_S"]
        self._held: dict[str, int] = {}
        self._foreign: tuple[tuple[str, int], ...] = ()
        self._renewing = False

    def on_start(self) -> None:
        # synchronously: nothing may claim work before the leases exist
        self._settle(Outcome(value=self._renew()), first=True)
        self.send_later(self._ttl_s / 3, _Renew())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Renew):
            if not self._renewing:
                self._renewing = True
                self.run_in_background(self._renew, _Renewed)
            self.send_later(self._ttl_s / 3, _Renew())
            return None
        if isinstance(message, _Renewed):
            self._renewing = False
            return self._settle(message.outcome, first=False)
        return super().on_receive(message)

    def _renew(self) -> tuple[dict[str, int], list[ForeignHolder]]:
        db = self._services.db
        held = acquire_all(db, self._services.holder, self._ttl_s)
        return held, foreign_holders(db, self._services.holder)

    def _settle(self, outcome: Outcome, first: bool) -> None:
        if outcome.error is not None:
            log.error("bot leases not renewed: %s (next try in %.0f s)",
                      type(outcome.error).__name__, self._ttl_s / 3)
            return
        held, foreign = outcome.value
        gained = set(held) - set(self._held)
        self._held = held
        summary = tuple((f.holder, f.bots) for f in foreign)
        if summary != self._foreign:
            self._foreign = summary
            if foreign:
                log.warning("%s held by another daemon on this database; this daemon does not "
                            "execute them until their leases run out", "; ".join(
                                f"{f.bots} bot(s) by {f.holder} (until {f.until:%H:%M:%S})"
                                for f in foreign))
            else:
                log.info("no bot is held by another daemon")
        if gained and not first and self._services.root is not None:
            # bots taken over from a holder that died: run what it left behind
            wake_backlogs(self._services)

    def on_exit(self) -> None:
        if self._exit_reason is not None:  # a crash: the restart renews them
            return
        try:
            release_all(self._services.db, self._services.holder)
        except Exception as exc:  # they run out on their own
            log.warning("bot leases not released: %s", type(exc).__name__)
