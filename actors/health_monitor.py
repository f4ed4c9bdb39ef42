"""HealthMonitor: probes dependencies on a timer, owns their last known state, pets the watchdog.

Probes run in background greenlets and report back as messages, so a hanging dependency never
blocks the monitor's mailbox; the watchdog ping is sent from the tick handler, so systemd
restarts us when the actor system stops processing messages.

A probe answers a bool or a :class:`ProbeResult` (with a secret-free detail), or raises
:class:`ProbeSkipped` when it cannot tell yet (what it asks is still starting): then it runs again
shortly, and nothing is recorded. When a dependency stops answering the monitor logs a warning
and tells systemd (STATUS=), at its first failing probe; when it answers again, an info line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from actors.messages import GetHealth
from observability import systemd
from supervision import Outcome, SupervisedActor

log = logging.getLogger(__name__)

SKIPPED_RETRY_S = 0.25  # a probe that could not tell yet runs again this soon

# Each process probes for itself: a node is up for a dependency only where every live process
# reaches it, and shows the slowest last probe.
PROBE_UP = Gauge("dependency_up", "1 when the last probe of a dependency succeeded", ["probe"],
                 multiprocess_mode="livemin")
PROBE_LATENCY = Gauge("dependency_probe_seconds", "Duration of the last probe", ["probe"],
                      multiprocess_mode="livemax")

@dataclass(frozen=True)
class ProbeResult:
    """A probe's answer with what it saw; `detail` must hold no secret (it is shown anonymously
    in /readyz's reason)."""

    ok: bool
    detail: str | None = None


class ProbeSkipped(Exception):
    """The probe cannot tell yet (what it asks is still starting); nothing is recorded."""


Probe = Callable[[], "bool | ProbeResult"]


@dataclass(frozen=True)
class ProbeSpec:
    """A named check and how often it runs."""

    probe: Probe
    interval_s: float


@dataclass(frozen=True)
class _Tick:
    name: str


@dataclass(frozen=True)
class _Retry:
    name: str


@dataclass(frozen=True)
class _Watchdog:
    pass


@dataclass(frozen=True)
class _Probed:
    name: str
    started: float
    outcome: Outcome


class HealthMonitor(SupervisedActor):
    """Runs each named probe on its own period, keeps the latest results, pets the watchdog."""

    def __init__(self, probes: Mapping[str, ProbeSpec], interval_s: float,
                 watchdog: Callable[[str], bool] = systemd.notify) -> None:
        super().__init__()
        self._probes = dict(probes)
        self._interval_s = interval_s
        self._watchdog = watchdog
        self._state: dict[str, dict[str, Any]] = {}
        self._in_flight: set[str] = set()

    def on_start(self) -> None:
        for name in self._probes:
            self._tick(name)
        self._pet()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            return self._tick(message.name)
        if isinstance(message, _Retry):
            return self._start(message.name)
        if isinstance(message, _Watchdog):
            return self._pet()
        if isinstance(message, _Probed):
            return self._record(message)
        if isinstance(message, GetHealth):
            return {name: dict(state) for name, state in self._state.items()}
        return super().on_receive(message)

    def _tick(self, name: str) -> None:
        self._start(name)
        self.send_later(self._probes[name].interval_s, _Tick(name))

    def _start(self, name: str) -> None:
        if name not in self._in_flight:  # a probe still hanging has its own timeout
            self._in_flight.add(name)
            started = time.monotonic()
            self.run_in_background(self._probes[name].probe,
                                   lambda outcome: _Probed(name, started, outcome))

    def _pet(self) -> None:
        self._watchdog("WATCHDOG=1")
        self.send_later(self._interval_s, _Watchdog())

    def _record(self, probed: _Probed) -> None:
        self._in_flight.discard(probed.name)
        error, value = probed.outcome.error, probed.outcome.value
        if isinstance(error, ProbeSkipped):
            self.send_later(min(SKIPPED_RETRY_S, self._probes[probed.name].interval_s),
                            _Retry(probed.name))
            return
        elapsed = time.monotonic() - probed.started
        if isinstance(value, ProbeResult):
            ok, detail = error is None and value.ok, value.detail
        else:
            ok, detail = error is None and bool(value), None
        if not ok and detail is None:  # an exception's repr may carry a URL: its type only
            detail = type(error).__name__ if error is not None else "probe answered false"
        previous = self._state.get(probed.name, {})
        self._state[probed.name] = {
            "ok": ok,
            "latency_ms": round(elapsed * 1000, 2),
            "checked_at": time.time(),
            "last_ok_at": time.time() if ok else previous.get("last_ok_at"),
            "error": None if ok else detail,
        }
        PROBE_UP.labels(probe=probed.name).set(1 if ok else 0)
        PROBE_LATENCY.labels(probe=probed.name).set(elapsed)
        if not ok and previous.get("ok", True):
            log.warning("dependency %s unreachable: %s", probed.name, detail)
            self._watchdog(f"STATUS=degraded: {probed.name} unreachable: {detail}")
        elif ok and previous.get("ok") is False:
            log.info("dependency %s answers again", probed.name)
            self._watchdog(f"STATUS=dependency {probed.name} answers again")
