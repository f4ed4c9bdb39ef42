"""Webhook secret hashes kept in memory, so alerts can be authenticated while PostgreSQL is down.

The cache maps bot id -> the stored (peppered) hash of its webhook secret, never a secret. It
is filled by every successful bot lookup of the webhook and replaced whole by `refresh` (the
intake journal actor calls it every few seconds while the database answers), so a rotation
done anywhere (the CLI in another process included) reaches it within that period. An alert
accepted from the cache carries the fingerprint of the hash it was checked against, and the
journal's replay refuses it when the bot's hash changed meanwhile: a rotated secret never
executes, even inside that window.
"""

from __future__ import annotations

import hashlib

from storage.database import Database


def secret_fingerprint(stored_hash: str | None) -> str:
    """A short digest of a stored hash: tells a rotation apart without keeping the hash twice."""
    return hashlib.sha256((stored_hash or "").encode()).hexdigest()[:32]


class SecretCache:
    """Bot id -> stored webhook secret hash (None: the bot has no secret configured)."""

    def __init__(self) -> None:
        self._hashes: dict[str, str | None] = {}

    def remember(self, bot_id: str, stored_hash: str | None) -> None:
        """Keep the hash just read from the database for this bot."""
        self._hashes[bot_id] = stored_hash

    def knows(self, bot_id: str) -> bool:
        """Whether the bot was seen in the database by this process."""
        return bot_id in self._hashes

    def stored_hash(self, bot_id: str) -> str | None:
        """The bot's last known hash (None: unknown bot, or no secret configured)."""
        return self._hashes.get(bot_id)

    def refresh(self, db: Database) -> int:
        """Replace the whole cache from the database (drops rotated hashes); returns its size."""
        rows = db.fetchall("SELECT id, webhook_secret_hash FROM trading_bots")
        self._hashes = {row["id"]: row["webhook_secret_hash"] for row in rows}
        return len(self._hashes)
