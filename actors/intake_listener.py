"""IntakeListener: wakes a bot when a signal reaches the database from outside this process.

Alerts that arrive through this daemon's webhook wake their bot directly. Signals written by
others (the operator CLI's stop-and-flatten, another daemon on the same database) announce
themselves with NOTIFY signal_accepted, and a daemon that does not hold a bot passes its
wake-ups to the holder (storage.bot_leases.wake_holder); this actor listens on a dedicated
connection in a background greenlet and wakes each named bot. A lost connection is opened
again (a database outage restarts no actor). Every SWEEP_S (and at each (re)connect) it
also wakes every bot with waiting signals, so a wake-up lost to a failure only delays a signal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gevent

from actors.dispatch import wake_backlogs, wake_bots
from actors.services import Services
from storage.bot_leases import HOLDER_WAKE_CHANNEL, woken_bot
from storage.notify import listen_forever
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


class IntakeListener(SupervisedActor):
    """Listens for signal_accepted notifications and wakes the bots they name."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services

    def on_start(self) -> None:
        self._track(gevent.spawn(listen_forever, self._services.db.dsn,
                                 (ACCEPTED_CHANNEL, HOLDER_WAKE_CHANNEL), self._woken,
                                 self._sweep, WAIT_S))
        self.send_later(SWEEP_S, _Sweep())

    def _woken(self, payloads: list[str]) -> None:
        bot_ids = [self._bot_of(p) for p in payloads]
        if woken := tuple(dict.fromkeys(b for b in bot_ids if b)):
            self._tell_self(_Woken(woken))

    def _bot_of(self, payload: str) -> str | None:
        """signal_accepted names a bot; a lease wake-up names its holder too (ours or not)."""
        if "\n" in payload:
            return woken_bot(payload, self._services.holder)
        return payload

    def _wake(self, bot_ids: tuple[str, ...]) -> None:
        try:  # announced to every process: each wakes the bots it runs (or may take)
            wake_bots(self._services, list(bot_ids), "notified", announce_others=False)
        except Exception as exc:  # the signals stay accepted; the next wake or sweep runs them
            log.error("could not wake %d bot(s): %s", len(bot_ids), type(exc).__name__)

    def _sweep(self) -> None:
        try:
            wake_backlogs(self._services)
        except Exception as exc:
            log.error("backlog sweep failed: %s", type(exc).__name__)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Woken):
            self._track(gevent.spawn(self._wake, message.bot_ids))
            return None
        if isinstance(message, _Sweep):
            self._track(gevent.spawn(self._sweep))
            self.send_later(SWEEP_S, _Sweep())
            return None
        return super().on_receive(message)
