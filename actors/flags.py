"""FlagsActor: the owner of the live Swift flags; every order asks it (`CurrentFlags`).

The environment gives the start values; values stored by `quantumvault flags set` (runtime_flags)
override them. The actor reads the stored values at start and again on every NOTIFY
runtime_flags_changed, which it LISTENs for on a dedicated connection in a background greenlet,
so a change reaches the next order within milliseconds, without a restart and without refusing
any alert. A lost connection is opened again (a database outage restarts no actor) and the
flags are read afresh. Every RESYNC_S it reads them again, so even a lost notification only
delays a change. A failed read keeps the flags it has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gevent

from actors.messages import CurrentFlags
from actors.services import Services
from config.settings import SETTINGS
from storage.flags import FLAGS_CHANNEL, stored_flags
from storage.notify import listen_forever
from supervision import SupervisedActor
from trading.routing import LIVE_FLAGS, SwiftFlags

log = logging.getLogger(__name__)

WAIT_S = 5.0
RESYNC_S = 30.0


@dataclass(frozen=True)
class _Changed:
    pass


@dataclass(frozen=True)
class _Resync:
    pass


@dataclass(frozen=True)
class _Read:
    seq: int  # reads are applied in the order they were started, never an older one last
    values: dict[str, Any] | None  # None: the read failed


def _checked(name: str, value: Any) -> Any:
    """A stored value as its setting parses it; None (logged) when it is not one, e.g. a row
    written by hand: a flag never takes a value the environment variable would refuse."""
    setting = next(s for s in SETTINGS if s.name == name)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, tuple):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    try:
        parsed = setting.parse(text)
    except ValueError:
        parsed = None
    if parsed is None or type(parsed) is not type(value) or parsed != value:
        log.error("stored flag %s=%r is not a valid value: ignored", name, value)
        return None
    return parsed


class FlagsActor(SupervisedActor):
    """Holds the current SwiftFlags; see the module docstring."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services
        self._start = {name: services.settings.values[name] for name in LIVE_FLAGS}
        self._flags = SwiftFlags.from_values(self._start)
        self._stored: dict[str, Any] = {}
        self._reads = 0
        self._applied = 0

    def on_start(self) -> None:
        # the first read happens before any ask is answered: a stored rollback holds at start;
        # the listener reads again once it listens (and after every reconnect), so a change
        # committed before it listened is not missed
        self._track(gevent.spawn(listen_forever, self._services.db.dsn, (FLAGS_CHANNEL,),
                                 self._changed, self._changed, WAIT_S))
        self._apply(self._read())
        self.send_later(RESYNC_S, _Resync())

    def _changed(self, *_payloads: list[str]) -> None:
        self._tell_self(_Changed())

    def _read(self) -> dict[str, Any] | None:
        try:
            stored = stored_flags(self._services.db)
        except Exception as exc:
            log.error("could not read the live flags: %s", type(exc).__name__)
            return None
        return {name: value for name, flag in stored.items()
                if (value := _checked(name, flag.value)) is not None}

    def _apply(self, stored: dict[str, Any] | None) -> None:
        if stored is None:
            return
        flags = SwiftFlags.from_values({**self._start, **stored})
        if flags != self._flags or stored != self._stored:
            log.warning("live flags now %s (stored: %s)", flags,
                        ", ".join(f"{k}={v}" for k, v in sorted(stored.items())) or "none")
        self._flags, self._stored = flags, stored

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CurrentFlags):
            return self._flags
        if isinstance(message, _Changed | _Resync):
            if isinstance(message, _Resync):
                self.send_later(RESYNC_S, _Resync())
            self._reads += 1
            seq = self._reads
            self.run_in_background(self._read, then=lambda o: _Read(seq, o.value))
            return None
        if isinstance(message, _Read):
            if message.seq > self._applied:
                self._applied = message.seq
                self._apply(message.values)
            return None
        return super().on_receive(message)
