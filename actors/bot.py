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

from dataclasses import dataclass
from typing import Any

from actors import retry_flow, signal_flow
from actors.bot_context import BotContext
from actors.messages import ProcessSignal, RunRetry
from actors.services import Services
from storage.bots import get_bot
from storage.signals import claim_next
from supervision import SupervisedActor

VENUE_PAUSE_FIRST_S = 1.0
VENUE_PAUSE_MAX_S = 30.0


@dataclass(frozen=True)
class _Resume:
    pass


def bot_child_name(bot_id: str) -> str:
    """The name of a bot's actor under the bots supervisor."""
    return f"bot-{bot_id}"


class BotActor(SupervisedActor):
    """Keeps one bot's order; see the module docstring."""

    metrics_name = "bots"

    def __init__(self, bot_id: str, services: Services) -> None:
        super().__init__()
        self._ctx = BotContext.create(bot_id, services)
        self._stale_s = services.settings["SIGNAL_STALE_S"]
        self._venue_pause = VENUE_PAUSE_FIRST_S / 2

    def on_start(self) -> None:
        if get_bot(self._ctx.services.db, self._ctx.bot_id) is None:
            raise LookupError(f"bot {self._ctx.bot_id} does not exist")
        # the work itself runs from the mailbox: a start must stay quick for the supervisor
        self.actor_ref.tell(_Resume())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Resume):
            retry_flow.resume_interrupted(self._ctx, self._stale_s)
            return self._drain()
        if isinstance(message, ProcessSignal):
            return self._drain()
        if isinstance(message, RunRetry):
            return retry_flow.run_retry(self._ctx, message.job, message.worker)
        return super().on_receive(message)

    def _drain(self) -> int:
        """Claim and run every accepted signal of this bot, oldest first; returns how many.

        A signal the venue could not be read for goes back to `accepted` and the drain stops
        there, so later signals keep waiting behind it (strict order); it is tried again with
        backoff while it is young enough, then fails.
        """
        done = 0
        while (row := claim_next(self._ctx.services.db, self._ctx.bot_id)) is not None:
            if signal_flow.process(self._ctx, row):
                self._venue_pause = min(VENUE_PAUSE_MAX_S, self._venue_pause * 2)
                self.send_later(self._venue_pause, ProcessSignal("venue-retry"))
                break
            self._venue_pause = VENUE_PAUSE_FIRST_S / 2
            done += 1
        return done
