"""Spreading bots over worker processes: who is alive, each worker's fair share, hand-overs.

Every worker keeps a `node_workers` row alive with its bot leases (storage.bot_leases). A
worker's share is the number of bots divided by the live workers, rounded up; a worker under
its share takes bots nobody holds (their holder died or let go), one over it hands bots to the
live worker with the fewest. A hand-over moves the lease to the new holder directly (its epoch
grows), and only for a bot with nothing in flight: no signal being processed, no retry job
running, no trade without an outcome. The send fence (the lease
epoch, checked as a trade goes out) keeps a hand-over that races a claim from sending twice.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass

from storage.database import Database

WORKERS_CHANNEL = "node_workers"  # payload: the holder of a worker that just renewed

# a bot with nothing of it in flight (the lease row is `l`)
_IDLE = (
    "NOT EXISTS (SELECT 1 FROM webhook_signals s WHERE s.trading_bot_id = l.bot_id"
    "  AND s.status = 'processing')"
    " AND NOT EXISTS (SELECT 1 FROM trade_retry_queue q WHERE q.bot_id = l.bot_id"
    "  AND q.status = 'running')"
    " AND NOT EXISTS (SELECT 1 FROM bot_trades t WHERE t.trading_bot_id = l.bot_id"
    "  AND t.status = 'pending')"
)


@dataclass(frozen=True)
class Shares:
    """What a worker sees at a renewal: the bots it holds (id -> epoch) and its fair share."""

    held: dict[str, int]
    share: int
    workers: int


def heartbeat(db: Database, holder: str, ttl_s: float) -> None:
    """Say this worker is alive for another `ttl_s` (and forget workers long gone); NOTIFY
    WORKERS_CHANNEL, so whoever watches the spread of the bots looks again."""
    db.execute(
        "INSERT INTO node_workers (holder, host, pid, seen_until)"
        " VALUES (%(holder)s, %(host)s, %(pid)s, now() + make_interval(secs => %(ttl)s))"
        " ON CONFLICT (holder) DO UPDATE SET seen_until = EXCLUDED.seen_until,"
        "  pid = EXCLUDED.pid, host = EXCLUDED.host;"
        " DELETE FROM node_workers WHERE seen_until < now() - interval '1 day';"
        " SELECT pg_notify(%(channel)s, %(holder)s)",
        {"holder": holder, "host": socket.gethostname()[:255], "pid": os.getpid(),
         "ttl": ttl_s, "channel": WORKERS_CHANNEL})


def leave(db: Database, holder: str) -> None:
    """A clean stop: this worker counts no more in anyone's share."""
    db.execute("DELETE FROM node_workers WHERE holder = %s", (holder,))


def renew(db: Database, holder: str, ttl_s: float) -> Shares:
    """Renew this worker's live leases and compute its share of the bots."""
    held = db.fetchall(
        "UPDATE bot_leases SET expires_at = now() + make_interval(secs => %(ttl)s)"
        " WHERE holder = %(holder)s AND expires_at > now() RETURNING bot_id, epoch",
        {"holder": holder, "ttl": ttl_s})
    counts = db.fetchone(
        "SELECT (SELECT count(*) FROM trading_bots) AS bots,"
        " (SELECT count(*) FROM node_workers WHERE seen_until > now()) AS workers")
    assert counts is not None
    workers = max(1, counts["workers"])
    return Shares({r["bot_id"]: r["epoch"] for r in held},
                  math.ceil(counts["bots"] / workers), workers)


def take_free(db: Database, holder: str, ttl_s: float, limit: int) -> dict[str, int]:
    """Take up to `limit` bots no live worker holds: bot id -> epoch."""
    if limit <= 0:
        return {}
    rows = db.fetchall(
        "INSERT INTO bot_leases (bot_id, holder, expires_at)"
        " SELECT b.id, %(holder)s, now() + make_interval(secs => %(ttl)s) FROM trading_bots b"
        " WHERE NOT EXISTS (SELECT 1 FROM bot_leases l WHERE l.bot_id = b.id"
        "  AND l.expires_at > now())"
        " ORDER BY b.id LIMIT %(limit)s"
        " ON CONFLICT (bot_id) DO UPDATE SET"
        "  epoch = CASE WHEN bot_leases.holder = EXCLUDED.holder THEN bot_leases.epoch"
        "          ELSE bot_leases.epoch + 1 END,"
        "  acquired_at = now(), holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
        " WHERE bot_leases.expires_at <= now()"
        " RETURNING bot_id, epoch", {"holder": holder, "ttl": ttl_s, "limit": limit})
    return {r["bot_id"]: r["epoch"] for r in rows}


def neediest_worker(db: Database, holder: str, share: int) -> str | None:
    """The live worker (not this one) holding the fewest bots, if it holds fewer than `share`."""
    row = db.fetchone(
        "SELECT w.holder, (SELECT count(*) FROM bot_leases l WHERE l.holder = w.holder"
        "  AND l.expires_at > now()) AS bots"
        " FROM node_workers w WHERE w.seen_until > now() AND w.holder <> %s"
        " ORDER BY bots, w.holder LIMIT 1", (holder,))
    return row["holder"] if row is not None and row["bots"] < share else None


def hand_over(db: Database, bot_id: str, holder: str, target: str, ttl_s: float) -> bool:
    """Move this worker's lease of an idle bot to `target` (a new epoch); False when the bot is
    not ours or has something in flight."""
    row = db.fetchone(
        "UPDATE bot_leases l SET holder = %(target)s, epoch = l.epoch + 1, acquired_at = now(),"
        " expires_at = now() + make_interval(secs => %(ttl)s)"
        f" WHERE l.bot_id = %(bot)s AND l.holder = %(holder)s AND l.expires_at > now() AND {_IDLE}"
        " RETURNING l.bot_id",
        {"bot": bot_id, "holder": holder, "target": target, "ttl": ttl_s})
    return row is not None


def mine_or_free(db: Database, holder: str, bot_ids: list[str]) -> list[str]:
    """Of these bots, those this worker holds or nobody live holds (wake-ups it should act on)."""
    rows = db.fetchall(
        "SELECT b FROM unnest(%(bots)s::text[]) AS b WHERE NOT EXISTS (SELECT 1 FROM bot_leases l"
        " WHERE l.bot_id = b AND l.holder <> %(holder)s AND l.expires_at > now())",
        {"bots": bot_ids, "holder": holder})
    return [r["b"] for r in rows]


def announce(db: Database, bot_ids: list[str], channel: str) -> None:
    """Tell every worker (NOTIFY `channel`, one per bot) that these bots have work."""
    db.execute("SELECT pg_notify(%(channel)s, b) FROM unnest(%(bots)s::text[]) AS b",
               {"channel": channel, "bots": bot_ids})
