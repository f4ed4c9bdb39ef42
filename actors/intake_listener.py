"""IntakeListener: wakes a bot when a signal reaches the database from outside this process.

Alerts that arrive through this daemon's webhook wake their bot directly. Signals written by
others (the operator CLI's stop-and-flatten, another daemon on the same database) announce
themselves with NOTIFY signal_accepted; this actor listens on a dedicated connection in a
background greenlet and wakes each named bot. A broken connection crashes the actor, and its
supervisor restarts it with a fresh one. Every SWEEP_S (and at each start) it also wakes every
bot with waiting signals, so a wake-up lost to a failure only delays a signal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gevent

from actors.dispatch import wake_backlogs, wake_bot
from actors.services import Services
from storage.notify import Listener
from storage.signals import ACCEPTED_CHANNEL
from supervision import SupervisedActor

log = logging.getLogger(__name__)

WAIT_S = 5.0
SWEEP_S = 30.0


@dataclass(frozen=True)
class _Woken:
    bot_ids: tuple[str, ...]


@dataclass(frozen=True)
class _Sweep:
    pass


@dataclass(frozen=True)
class _ListenerDied:
    error: BaseException


class IntakeListener(SupervisedActor):
    """Listens for signal_accepted notifications and wakes the bots they name."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services

    def on_start(self) -> None:
        listener = Listener(self._services.db.dsn, ACCEPTED_CHANNEL)
        self._track(gevent.spawn(self._listen, listener))
        self.actor_ref.tell(_Sweep())

    def _listen(self, listener: Listener) -> None:
        try:
            while True:
                payloads = listener.next_payloads(WAIT_S)
                if payloads:
                    self._tell_self(_Woken(tuple(dict.fromkeys(payloads))))
        except Exception as exc:
            self._tell_self(_ListenerDied(exc))
        finally:
            listener.close()

    def _wake(self, bot_id: str) -> None:
        try:
            wake_bot(self._services, bot_id, "notified")
        except Exception as exc:  # the signal stays accepted; the next wake or restart runs it
            log.error("could not wake bot: %s", type(exc).__name__, extra={"bot_id": bot_id})

    def _sweep(self) -> None:
        try:
            wake_backlogs(self._services)
        except Exception as exc:
            log.error("backlog sweep failed: %s", type(exc).__name__)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Woken):
            for bot_id in message.bot_ids:
                self._track(gevent.spawn(self._wake, bot_id))
            return None
        if isinstance(message, _Sweep):
            self._track(gevent.spawn(self._sweep))
            self.send_later(SWEEP_S, _Sweep())
            return None
        if isinstance(message, _ListenerDied):
            raise RuntimeError("signal listener connection failed") from message.error
        return super().on_receive(message)
