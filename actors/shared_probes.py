"""Venue health probes run once per database, their results shared with every process.

Each process's health monitor asks the same question (is Swift up? does an RPC endpoint
answer?), but only the process holding the HEALTH_PROBES duty lease asks the venue; it records
each result in `venue_health`, and the others read it there, so the venue sees one prober
however many processes run. A process that may not probe (the intake, which owns no RPC
client) only reads. A result older than three intervals means nobody probes: that is a
failure, said as such (once the process has run that long: its workers may be starting).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from actors.health_monitor import Probe, ProbeResult, ProbeSkipped
from actors.services import Services
from storage.duty_leases import HEALTH_PROBES, hold
from storage.journal import DATABASE_UNREACHABLE
from storage.venue_health import publish, read

STALE_INTERVALS = 3


def shared_probe(services: Services, name: str, probe: Probe, interval_s: float,
                 may_probe: bool) -> Callable[[], ProbeResult]:
    """`probe` run here while this process holds the probe duty, else its shared result."""
    ttl_s = STALE_INTERVALS * interval_s
    started = time.monotonic()

    def run() -> ProbeResult:
        db = services.db
        try:
            if may_probe and hold(db, HEALTH_PROBES, services.holder, ttl_s):
                answer = probe()
                result = answer if isinstance(answer, ProbeResult) else ProbeResult(answer)
                publish(db, name, result.ok, result.detail, services.holder)
                return result
            shared = read(db, name)
        except DATABASE_UNREACHABLE as exc:  # the database probe says so; this one cannot tell
            raise ProbeSkipped(f"database: {type(exc).__name__}") from None
        if shared is None or shared.age_s > ttl_s:
            if time.monotonic() - started < ttl_s:  # the workers are starting
                raise ProbeSkipped(f"no {name} probe result shared yet")
            return ProbeResult(False, f"no process has probed {name} for {ttl_s:g} s")
        return ProbeResult(shared.ok, shared.detail)

    return run
