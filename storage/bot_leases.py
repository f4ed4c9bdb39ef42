"""Per-bot leases: which daemon may execute a bot, fenced in the database.

A daemon takes the lease of every bot that no other live daemon holds and renews it on a timer;
only the holder claims a bot's signals and retry jobs (`LEASED_BY` is the condition those claims
add). A lease is a row, not a session advisory lock, so it survives a PostgreSQL restart, and a
holder that died loses its bots only when their leases run out. `epoch` counts hand-overs: it
grows each time a lease changes holder, never on a renewal by the same holder.

A holder id names one daemon's state directory (`holder_id`), so a daemon restarted on its own
STATE_DIR takes its bots back at once, while another machine waits for the leases to run out.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage.database import Database

HOLDER_WAKE_CHANNEL = "bot_lease_wake"  # payload: holder, newline, bot id

# claims add this condition, with %(holder)s bound: the bot's lease is live and ours
LEASED_BY = ("EXISTS (SELECT 1 FROM bot_leases l WHERE l.bot_id = {bot} AND l.holder = %(holder)s"
             " AND l.expires_at > now())")

# a send's fence (storage.trades) and a claim's, with %(holder)s bound and {epoch} an expression:
# the bot's lease is live, ours and still at the sender's epoch (NULL: any epoch of ours);
# FOR SHARE makes a hand-over wait until the statement that marks the send has committed
HELD_AT_EPOCH = ("EXISTS (SELECT 1 FROM bot_leases l WHERE l.bot_id = {bot}"
                 " AND l.holder = %(holder)s AND l.expires_at > now()"
                 " AND ({epoch}::bigint IS NULL OR l.epoch = {epoch}) FOR SHARE)")

_ACQUIRE = (
    "INSERT INTO bot_leases (bot_id, holder, expires_at)"
    " SELECT id, %(holder)s, now() + make_interval(secs => %(ttl)s) FROM trading_bots"
    " WHERE %(bot)s::text IS NULL OR id = %(bot)s"
    " ON CONFLICT (bot_id) DO UPDATE SET"
    "  epoch = CASE WHEN bot_leases.holder = EXCLUDED.holder THEN bot_leases.epoch"
    "          ELSE bot_leases.epoch + 1 END,"
    "  acquired_at = CASE WHEN bot_leases.holder = EXCLUDED.holder THEN bot_leases.acquired_at"
    "                ELSE now() END,"
    "  holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
    " WHERE bot_leases.holder = EXCLUDED.holder OR bot_leases.expires_at <= now()"
    " RETURNING bot_id, epoch")


class LeaseLost(Exception):
    """This daemon no longer holds the bot's lease: it must not send anything for it."""


@dataclass(frozen=True)
class ForeignHolder:
    """Another daemon's live leases: how many bots, until when at the latest."""

    holder: str
    bots: int
    until: datetime


def new_holder_id() -> str:
    """A fresh holder id: host name and a random tag."""
    return f"{socket.gethostname()[:64]}:{secrets.token_hex(4)}"


def holder_id(state_dir: Path) -> str:
    """This state directory's holder id, made once, then kept."""
    path = state_dir / "holder_id"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_holder_id())
    return path.read_text().strip()


def acquire_all(db: Database, holder: str, ttl_s: float) -> dict[str, int]:
    """Take or renew the lease of every bot no other live daemon holds: bot id -> epoch."""
    rows = db.fetchall(_ACQUIRE, {"holder": holder, "ttl": ttl_s, "bot": None})
    return {row["bot_id"]: row["epoch"] for row in rows}


def acquire(db: Database, bot_id: str, holder: str, ttl_s: float) -> int | None:
    """Take or renew one bot's lease (a bot created since the last renewal); its epoch, or None
    while another live daemon holds it."""
    row = db.fetchone(_ACQUIRE, {"holder": holder, "ttl": ttl_s, "bot": bot_id})
    return None if row is None else row["epoch"]


def holder_of(db: Database, bot_id: str) -> str | None:
    """Who holds the bot's lease now (None: nobody live)."""
    row = db.fetchone("SELECT holder FROM bot_leases WHERE bot_id = %s AND expires_at > now()",
                      (bot_id,))
    return None if row is None else row["holder"]


def foreign_holders(db: Database, holder: str) -> list[ForeignHolder]:
    """Other daemons with live leases, most bots first."""
    rows = db.fetchall(
        "SELECT holder, count(*) AS bots, max(expires_at) AS until FROM bot_leases"
        " WHERE holder <> %s AND expires_at > now() GROUP BY holder ORDER BY bots DESC, holder",
        (holder,))
    return [ForeignHolder(r["holder"], r["bots"], r["until"]) for r in rows]


def release_all(db: Database, holder: str) -> int:
    """Let go of every lease of this holder (a clean stop): others may take them at once."""
    return db.execute("UPDATE bot_leases SET expires_at = now() WHERE holder = %s"
                      " AND expires_at > now()", (holder,))


def wake_holder(db: Database, bot_id: str) -> str | None:
    """Pass a wake-up for the bot to the daemon that holds it (NOTIFY HOLDER_WAKE_CHANNEL,
    read by that daemon's intake listener); the holder, or None when nobody holds it."""
    row = db.fetchone(
        "SELECT holder, pg_notify(%s, holder || E'\\n' || bot_id) FROM bot_leases"
        " WHERE bot_id = %s AND expires_at > now()", (HOLDER_WAKE_CHANNEL, bot_id))
    return None if row is None else row["holder"]


def woken_bot(payload: str, holder: str) -> str | None:
    """The bot a HOLDER_WAKE_CHANNEL payload wakes in this daemon (None: meant for another)."""
    target, _, bot_id = payload.partition("\n")
    return bot_id if target == holder and bot_id else None
