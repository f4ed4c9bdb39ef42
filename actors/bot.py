"""BotActor: one per bot; the mailbox that runs that bot's signals one at a time, in arrival order.

The actor holds nothing that the database and the venue cannot rebuild. A ProcessSignal message
is only a wake-up: the actor claims and runs every accepted signal of its bot, oldest first, so
a signal dispatched twice, or dispatched before a backlog left by a restart, still runs once
and in order. Different bots are different actors, so they never wait for each other; a bot's
next signal waits for its previous order's outcome, which is what keeps a bot's order total.

What a signal does is in plain modules the actor calls: `actors.signal_flow` (snapshot, copies,
trigger points, sizing, orders), `actors.order_exec` (one order, Swift first) and
`actors.retry_flow` (retries and what a restart finds half done).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from actors import retry_flow, signal_flow
from actors.bot_context import BotContext
from actors.messages import HandOver, ProcessSignal, Quiesce, RunRetry
from actors.services import Services
from storage.bot_leases import LeaseLost, acquire, wake_holder
from storage.bot_shares import hand_over
from storage.bots import get_bot
from storage.journal import DATABASE_UNREACHABLE
from storage.retry_queue import release_claim
from supervision import Backoff, SupervisedActor

log = logging.getLogger(__name__)

# a signal the venue could not be read for waits 1 s, 2 s, ... up to 30 s (no jitter: one bot)
VENUE_PAUSE = Backoff(base_s=1.0, cap_s=30.0, jitter=0.0)
DB_RETRY_S = 1.0  # a bot that lost the database tries again this often


def bot_child_name(bot_id: str) -> str:
    """The name of a bot's actor under the bots supervisor."""
    return f"bot-{bot_id}"


class BotActor(SupervisedActor):
    """Keeps one bot's order; see the module docstring."""

    metrics_name = "bots"

    def __init__(self, bot_id: str, services: Services) -> None:
        super().__init__()
        self._ctx = BotContext.create(bot_id, services)
        self._stale_s = services.settings.signal_stale_s
        self._lease_ttl_s = services.settings.bot_lease_ttl_s
        self._lease_checked_until = float("-inf")
        self._epoch: int | None = None  # the lease epoch this actor last held the bot under
        self._resumed = False
        self._venue_pauses = 0  # consecutive pauses of the signal in hand
        self._rng = random.Random()
        self._db_retry_due = False
        self._db_lost = False

    def on_start(self) -> None:
        try:
            missing = get_bot(self._ctx.services.db, self._ctx.bot_id) is None
        except DATABASE_UNREACHABLE:
            missing = False  # the drain fails the same way, and waits for the database
        if missing:
            raise LookupError(f"bot {self._ctx.bot_id} does not exist")
        # the work itself runs from the mailbox: a start must stay quick for the supervisor
        self.actor_ref.tell(ProcessSignal("start"))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Quiesce):  # answered once the signal in hand is done
            return True
        if isinstance(message, HandOver):
            return self._hand_over(message.target)
        try:
            if self._ctx.services.stopping.is_set():  # what is waiting runs after the restart
                if isinstance(message, RunRetry):
                    return release_claim(self._ctx.services.db, message.job.id,
                                         message.worker)
                if isinstance(message, ProcessSignal):
                    return 0
            if isinstance(message, ProcessSignal):
                done = self._drain()
                self._db_lost = False
                return done
            if isinstance(message, RunRetry):
                if not self._held_here():  # claimed under a lease that has moved since
                    return release_claim(self._ctx.services.db, message.job.id,
                                         message.worker)
                return retry_flow.run_retry(self._ctx, message.job, message.worker)
        except DATABASE_UNREACHABLE as exc:
            return self._database_lost(exc)
        except LeaseLost:  # another daemon took the bot over: it settles what was in hand
            log.warning("bot lease lost to another daemon: nothing more is sent from here",
                        extra={"bot_id": self._ctx.bot_id})
            self._lease_checked_until = float("-inf")
            self._resumed = False
            return 0
        return super().on_receive(message)

    def _database_lost(self, exc: BaseException) -> None:
        """Start over as a restart would (fresh context, settle what was left half done), but
        once the database answers: a crash per attempt would exhaust the bots supervisor's
        restart intensity within a failover and stop every bot with it."""
        if not self._db_lost:
            log.warning("database unreachable (%s): this bot starts over once it answers",
                        type(exc).__name__, extra={"bot_id": self._ctx.bot_id})
            self._db_lost = True
        self._ctx = BotContext.create(self._ctx.bot_id, self._ctx.services)
        self._resumed = False
        self._lease_checked_until = float("-inf")
        if not self._db_retry_due:
            self._db_retry_due = True
            self.send_later(DB_RETRY_S, ProcessSignal("database-retry"))

    def _held_here(self) -> bool:
        """Does this daemon hold the bot's lease? Asked of the database at most once a third
        of the lease's life (claims are fenced by it anyway); when another daemon holds it,
        the wake-up is passed on to that daemon."""
        if time.monotonic() < self._lease_checked_until:
            return True
        db, holder = self._ctx.services.db, self._ctx.services.holder
        epoch = acquire(db, self._ctx.bot_id, holder, self._lease_ttl_s)
        if epoch is None:
            log.debug("bot held by %s: wake-up passed on", wake_holder(db, self._ctx.bot_id),
                      extra={"bot_id": self._ctx.bot_id})
            return False
        if epoch != self._epoch:  # held by another daemon meanwhile: settle what it left
            self._epoch, self._resumed = epoch, False
        self._ctx.lease_epoch = epoch  # every send is fenced by it
        self._lease_checked_until = time.monotonic() + self._lease_ttl_s / 3
        return True

    def _hand_over(self, target: str) -> bool:
        """Move the lease to `target` if the bot is idle (its mailbox is between signals here,
        and the database shows nothing of it in flight); the next wake-up here passes on."""
        try:
            moved = hand_over(self._ctx.services.db, self._ctx.bot_id, self._ctx.services.holder,
                              target, self._lease_ttl_s)
        except DATABASE_UNREACHABLE:
            return False
        if moved:
            self._lease_checked_until = float("-inf")
            log.info("bot handed over to %s", target, extra={"bot_id": self._ctx.bot_id})
        return moved

    def _drain(self) -> int:
        """Claim and run the oldest accepted signal of this bot, then wake itself for the next
        if one waits (1), or find none (0).

        Only under this daemon's lease of the bot, at the epoch it last learnt (the claim
        checks it; the lease itself is asked only when the claim finds nothing); the first time
        it holds it, what a crash left half done is settled first
        (retry_flow.resume_interrupted). A signal the venue could not be read for goes back to
        `accepted` and the drain stops there, so later signals keep waiting behind it (strict
        order); it is tried again with backoff while it is young enough, then fails.
        """
        self._db_retry_due = False
        row = None
        if self._resumed and self._epoch is not None:  # the claim itself checks the lease
            row = self._ctx.services.claims((self._ctx.bot_id, self._epoch))
            if row is None:  # nothing waits, or the lease moved: ask the lease itself
                self._lease_checked_until = float("-inf")
        if row is None:
            if not self._held_here():
                return 0
            if not self._resumed:
                retry_flow.resume_interrupted(self._ctx, self._stale_s)
                self._resumed = True
            row = self._ctx.services.claims((self._ctx.bot_id, self._epoch))
            if row is None:
                return 0
        if signal_flow.process(self._ctx, row):
            self._venue_pauses += 1
            self.send_later(VENUE_PAUSE.delay(self._venue_pauses, self._rng),
                            ProcessSignal("venue-retry"))
            return 0
        self._venue_pauses = 0
        if row.more_waiting:  # as a message of its own: a Quiesce waits for one signal at most
            self.actor_ref.tell(ProcessSignal("next"))  # (a signal accepted since wakes it too)
        return 1
