"""Which bots have signal work waiting, so a (re)starting process can wake their actors."""

from __future__ import annotations

from storage.database import Database


def backlogged_bots(db: Database) -> list[str]:
    """Bots with accepted signals, or with signals a crash left processing."""
    rows = db.fetchall("SELECT DISTINCT trading_bot_id FROM webhook_signals"
                       " WHERE status IN ('accepted', 'processing')")
    return [row["trading_bot_id"] for row in rows]
