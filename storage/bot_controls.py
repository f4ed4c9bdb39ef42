"""Writes of a bot's switches: its Swift flags, and pausing or resuming it.

Each writes only the columns it names (`swift_enabled`, `swift_fallback_enabled`,
`is_active`/`paused_*`), none of which the policy HMAC or the binding MAC covers, and a running
daemon picks them up at the next signal (the bot actor reads its row per signal).
"""

from __future__ import annotations

from typing import Any

from storage.database import Database


def set_swift_flags(db: Database, bot_id: str, swift_enabled: bool | None,
                    fallback_enabled: bool | None) -> dict[str, Any] | None:
    """Set a bot's Swift switches (None: unchanged); returns {before..., after...} or None."""
    return db.fetchone(
        "UPDATE trading_bots b SET swift_enabled = COALESCE(%(swift)s, b.swift_enabled),"
        " swift_fallback_enabled = COALESCE(%(fallback)s, b.swift_fallback_enabled),"
        " updated_at = now()"
        " FROM (SELECT id, swift_enabled, swift_fallback_enabled FROM trading_bots"
        "       WHERE id = %(id)s FOR UPDATE) old"
        " WHERE b.id = old.id"
        " RETURNING b.id, old.swift_enabled AS was_swift_enabled,"
        " old.swift_fallback_enabled AS was_swift_fallback_enabled, b.swift_enabled,"
        " b.swift_fallback_enabled",
        {"swift": swift_enabled, "fallback": fallback_enabled, "id": bot_id})


def pause_bot(db: Database, bot_id: str, reason: str,
              paused_by: str = "operator") -> dict[str, Any] | None:
    """Pause a bot; returns the paused row, or None if unknown or already paused.

    `paused_by` is "system" (the daemon: its reduce-only closes still run) or "operator"
    (everything stops). An operator's pause also takes over a system pause, so `bot pause`
    on a bot the system paused stops its closes too; a system pause never softens an
    operator's.
    """
    if paused_by not in ("system", "operator"):
        raise ValueError(f"paused_by must be 'system' or 'operator', not {paused_by!r}")
    return db.fetchone(
        "UPDATE trading_bots SET is_active = false, paused_reason = %(reason)s,"
        " paused_at = now(), paused_by = %(by)s, updated_at = now()"
        " WHERE id = %(id)s AND (is_active OR (%(by)s = 'operator'"
        "  AND paused_by IS DISTINCT FROM 'operator'))"
        " RETURNING id, is_active, paused_reason, paused_at, paused_by",
        {"reason": reason, "by": paused_by, "id": bot_id})


def resume_bot(db: Database, bot_id: str) -> dict[str, Any] | None:
    """Resume a paused bot (clears the pause); None if unknown or not paused."""
    return db.fetchone(
        "UPDATE trading_bots SET is_active = true, paused_reason = NULL, paused_at = NULL,"
        " paused_by = NULL, updated_at = now() WHERE id = %s AND NOT is_active"
        " RETURNING id, is_active, paused_reason, paused_at", (bot_id,))
