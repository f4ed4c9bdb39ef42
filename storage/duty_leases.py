"""Duties that run once for the whole database, wherever their lease is held.

With several worker processes (or machines) on one database, a periodic duty that every process
would repeat (the venue health probes) runs only in the process that
holds its lease; the holder renews it each time it runs the duty, and a holder that died loses
it when it runs out, so another process takes the duty over within its TTL.
"""

from __future__ import annotations

from storage.database import Database

HEALTH_PROBES = "health_probes"


def hold(db: Database, duty: str, holder: str, ttl_s: float) -> bool:
    """Take (if free or run out) or renew the duty's lease; True while this holder has it."""
    row = db.fetchone(
        "INSERT INTO duty_leases (duty, holder, expires_at)"
        " VALUES (%(duty)s, %(holder)s, now() + make_interval(secs => %(ttl)s))"
        " ON CONFLICT (duty) DO UPDATE SET"
        "  epoch = CASE WHEN duty_leases.holder = EXCLUDED.holder THEN duty_leases.epoch"
        "          ELSE duty_leases.epoch + 1 END,"
        "  holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
        " WHERE duty_leases.holder = EXCLUDED.holder OR duty_leases.expires_at <= now()"
        " RETURNING holder", {"duty": duty, "holder": holder, "ttl": ttl_s})
    return row is not None


def release(db: Database, holder: str) -> None:
    """A clean stop: every duty of this holder may be taken at once."""
    db.execute("UPDATE duty_leases SET expires_at = now() WHERE holder = %s"
               " AND expires_at > now()", (holder,))
