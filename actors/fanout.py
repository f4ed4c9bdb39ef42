"""FanoutCoordinator: one source signal becomes a copy for every active subscriber bot.

Copies are rows (created once, idempotent by hash) run by each subscriber's own BotActor, so
per-bot order holds for subscribers too. RouteSignal is answered once the copies are
committed, so the source signal is marked finished only after its copies exist: a crash in
between loses nothing (start-up wakes every bot with accepted signals). At most
`concurrency` copies are in flight; each finished copy starts the next, so the bound holds
without batches or pauses, and a slow or failing subscriber delays nobody else. Swift health
is asked by every order, so subscribers reached after Swift turned unhealthy go straight to
legacy.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from actors.bot import ProcessSignal
from actors.dispatch import bot_ref
from actors.services import Services
from storage.copy_trading import published_for_bot, subscriber_bots
from storage.signals import record_copies
from supervision import Outcome, SupervisedActor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteSignal:
    """Route a source bot's signal to its subscribers (`trigger`: why, for the record)."""

    signal_id: str
    source_bot_id: str
    trigger: str


@dataclass(frozen=True)
class FanoutStatus:
    """Ask for the copies queued and in flight."""


@dataclass(frozen=True)
class _CopiesReady:
    signal_id: str
    outcome: Outcome


@dataclass(frozen=True)
class _CopyDone:
    bot_id: str
    copy_id: str
    outcome: Outcome


class FanoutCoordinator(SupervisedActor):
    """Creates subscriber copies off the mailbox and runs them with bounded concurrency."""

    def __init__(self, services: Services, concurrency: int, copy_timeout_s: float) -> None:
        super().__init__()
        self._services = services
        self._concurrency = concurrency
        self._copy_timeout_s = copy_timeout_s
        self._queue: deque[tuple[str, str]] = deque()
        self._in_flight = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RouteSignal):
            return self.answer_later(lambda: self._copies(message),
                                     then=lambda o: _CopiesReady(message.signal_id, o))
        if isinstance(message, _CopiesReady):
            return self._enqueue(message)
        if isinstance(message, _CopyDone):
            return self._copy_done(message)
        if isinstance(message, FanoutStatus):
            return {"queued": len(self._queue), "in_flight": self._in_flight}
        return super().on_receive(message)

    def _copies(self, route: RouteSignal) -> list[tuple[str, str]]:
        db = self._services.db
        published = published_for_bot(db, route.source_bot_id)
        if published is None or not published.is_active:
            return []
        bot_ids = [bot.id for bot in subscriber_bots(db, published.id)]
        if not bot_ids:
            return []
        copies = record_copies(db, route.signal_id, bot_ids)
        log.info("routing to %d subscribers (%s)", len(copies), route.trigger,
                 extra={"signal_id": route.signal_id, "bot_id": route.source_bot_id})
        return [(bot_id, copies[bot_id]) for bot_id in bot_ids if bot_id in copies]

    def _enqueue(self, ready: _CopiesReady) -> None:
        if ready.outcome.error is not None:
            log.error("could not create subscriber copies: %r", ready.outcome.error,
                      extra={"signal_id": ready.signal_id})
            return
        self._queue.extend(ready.outcome.value)
        self._pump()

    def _pump(self) -> None:
        while self._queue and self._in_flight < self._concurrency:
            bot_id, copy_id = self._queue.popleft()
            self._in_flight += 1
            self.run_in_background(lambda b=bot_id, c=copy_id: self._run_copy(b, c),
                                   then=lambda o, b=bot_id, c=copy_id: _CopyDone(b, c, o))

    def _run_copy(self, bot_id: str, copy_id: str) -> Any:
        return bot_ref(self._services, bot_id).ask(ProcessSignal(copy_id),
                                                   timeout=self._copy_timeout_s)

    def _copy_done(self, done: _CopyDone) -> None:
        self._in_flight -= 1
        if done.outcome.error is not None:
            log.warning("subscriber copy did not complete: %s", type(done.outcome.error).__name__,
                        extra={"signal_id": done.copy_id, "bot_id": done.bot_id})
        self._pump()
