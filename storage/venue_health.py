"""The venue's health as the holder of the probe duty last saw it, shared by every process.

One process probes Swift and RPC (storage.duty_leases.HEALTH_PROBES); the others read its
results here instead of repeating the probes against the venue.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True)
class SharedProbe:
    """One probe's last result and its age in seconds."""

    ok: bool
    detail: str | None
    age_s: float


def publish(db: Database, probe: str, ok: bool, detail: str | None, holder: str) -> None:
    """Record a probe's result."""
    db.execute(
        "INSERT INTO venue_health (probe, ok, detail, probed_by) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (probe) DO UPDATE SET ok = EXCLUDED.ok, detail = EXCLUDED.detail,"
        " probed_by = EXCLUDED.probed_by, probed_at = now()", (probe, ok, detail, holder))


def read(db: Database, probe: str) -> SharedProbe | None:
    """A probe's last shared result (None: never probed)."""
    row = db.fetchone(
        "SELECT ok, detail, extract(epoch FROM now() - probed_at)::float AS age_s"
        " FROM venue_health WHERE probe = %s", (probe,))
    return None if row is None else SharedProbe(row["ok"], row["detail"], row["age_s"])
