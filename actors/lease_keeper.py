"""LeaseKeeper: holds this process's per-bot leases, so one process executes a bot at a time.

At start, before the bots and the intake, it takes its leases, then renews them every third of
BOT_LEASE_TTL_S. A process that executes everything alone (role ALL) takes every bot no other
live daemon holds, as one statement that also takes bots created since and bots whose holder
died; when other daemons hold bots, one log line says so. A worker (role WORKER) takes its fair
share instead (storage.bot_shares): it says it is alive, renews what it holds, takes bots
nobody holds while under its share, and hands bots it has too many of to the worker with the
fewest (through each bot's own mailbox, so only a bot between signals moves). Signals and
retry jobs are claimed only under a live lease of ours. A renewal the database refuses is
logged and tried at the next tick (an outage must not crash-loop the tree); on a clean stop
the leases and duties are released, so others may take them at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from actors.dispatch import bot_ref, wake_backlogs
from actors.messages import HandOver
from actors.services import ProcessRole, Services
from observability.node_metrics import BOT_LEASE_LOSSES, BOT_LEASE_RENEWALS, WORKER_BOTS_HELD
from storage import bot_shares
from storage.bot_leases import ForeignHolder, acquire_all, foreign_holders, release_all
from storage.duty_leases import release as release_duties
from supervision import Outcome, SupervisedActor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Renew:
    pass


@dataclass(frozen=True)
class _Renewal:
    """What one renewal found: bots held (id -> epoch), other daemons, bots to hand over."""

    held: dict[str, int]
    foreign: list[ForeignHolder] = field(default_factory=list)
    surplus: tuple[str, ...] = ()
    target: str | None = None


@dataclass(frozen=True)
class _Renewed:
    outcome: Outcome


class LeaseKeeper(SupervisedActor):
    """Takes and renews the leases of this process's bots; see the module docstring."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services
        self._ttl_s: float = services.settings.bot_lease_ttl_s
        self._held: dict[str, int] = {}
        self._handed: set[str] = set()
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

    def _renew(self) -> _Renewal:
        db, holder = self._services.db, self._services.holder
        if self._services.role is not ProcessRole.WORKER:
            return _Renewal(acquire_all(db, holder, self._ttl_s), foreign_holders(db, holder))
        bot_shares.heartbeat(db, holder, self._ttl_s)
        shares = bot_shares.renew(db, holder, self._ttl_s)
        held = dict(shares.held)
        held.update(bot_shares.take_free(db, holder, self._ttl_s, shares.share - len(held)))
        surplus = len(held) - shares.share
        target = bot_shares.neediest_worker(db, holder, shares.share) if surplus > 0 else None
        return _Renewal(held, surplus=tuple(sorted(held)[-surplus:]) if target else (),
                        target=target)

    def _settle(self, outcome: Outcome, first: bool) -> None:
        worker = self._services.holder
        if outcome.error is not None:
            log.error("bot leases not renewed: %s (next try in %.0f s)",
                      type(outcome.error).__name__, self._ttl_s / 3)
            return
        renewal: _Renewal = outcome.value
        BOT_LEASE_RENEWALS.labels(worker).inc(len(renewal.held))
        lost = set(self._held) - set(renewal.held) - self._handed
        if lost:
            BOT_LEASE_LOSSES.labels(worker).inc(len(lost))
            log.warning("%d bot lease(s) lost to another process (ran out before renewal)",
                        len(lost))
        gained = set(renewal.held) - set(self._held)
        self._held = renewal.held
        self._handed = set()
        WORKER_BOTS_HELD.labels(worker).set(len(self._held))
        self._report_foreign(renewal.foreign)
        if gained and not first and self._services.root is not None:
            # bots taken over from a holder that died or handed them here: run what they left
            wake_backlogs(self._services)
        if renewal.target is not None and self._services.root is not None:
            for bot_id in renewal.surplus:  # each moves once its mailbox reaches the message
                bot_ref(self._services, bot_id).tell(HandOver(renewal.target))
                self._handed.add(bot_id)

    def _report_foreign(self, foreign: list[ForeignHolder]) -> None:
        """One log line when the set of other daemons holding bots changes."""
        summary = tuple((f.holder, f.bots) for f in foreign)
        if summary == self._foreign:
            return
        self._foreign = summary
        if foreign:
            log.warning("%s held by another daemon on this database; this daemon does not "
                        "execute them until their leases run out", "; ".join(
                            f"{f.bots} bot(s) by {f.holder} (until {f.until:%H:%M:%S})"
                            for f in foreign))
        else:
            log.info("no bot is held by another daemon")

    def on_exit(self) -> None:
        if self._exit_reason is not None:  # a crash: the restart renews them
            return
        db, holder = self._services.db, self._services.holder
        try:
            release_all(db, holder)
            release_duties(db, holder)
            bot_shares.leave(db, holder)
        except Exception as exc:  # they run out on their own
            log.warning("bot leases not released: %s", type(exc).__name__)
