"""Queries behind the operator's daily commands: per-bot switches, bot states, queues, IOUs.

Every read selects named columns only: no webhook secret hash, policy HMAC, sealed key, signed
payload or retry webhook payload ever leaves this module. The switches write only the columns
they name (`swift_enabled`, `swift_fallback_enabled`, `is_active`/`paused_*`), none of which the
policy HMAC covers, and a running daemon picks them up at the next signal (the bot actor reads
its row per signal).
"""

from __future__ import annotations

from typing import Any

from storage.database import Database

RETRY_STATUSES = ("pending", "running", "failed", "done")
IOU_STATUSES = ("pending", "sending", "paid", "void")
LIST_LIMIT = 1000


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


def bot_states(db: Database, wallet_address: str | None = None) -> list[dict[str, Any]]:
    """Every bot (or one wallet's) with its switches and its latest signal, oldest bot first."""
    return db.fetchall(
        "SELECT b.id, b.name, b.market, b.wallet_address, b.is_active, b.paused_reason,"
        " b.paused_at, b.paused_by, b.swift_enabled, b.swift_fallback_enabled,"
        " b.source_published_bot_id AS follows, s.id AS last_signal_id,"
        " s.status AS last_signal_status, s.status_reason AS last_signal_reason,"
        " s.received_at AS last_signal_at"
        " FROM trading_bots b LEFT JOIN LATERAL ("
        "   SELECT id, status, status_reason, received_at FROM webhook_signals"
        "   WHERE trading_bot_id = b.id ORDER BY seq DESC LIMIT 1) s ON true"
        " WHERE %(wallet)s::text IS NULL OR b.wallet_address = %(wallet)s"
        " ORDER BY b.created_at, b.id LIMIT %(limit)s",
        {"wallet": wallet_address, "limit": LIST_LIMIT})


def swift_order_events(db: Database, swift_order_ids: list[str]) -> dict[str, list[dict]]:
    """swift_order_logs events per Swift order id, in order (payloads left out)."""
    if not swift_order_ids:
        return {}
    rows = db.fetchall(
        "SELECT swift_order_id, event_type, timestamp, error_code, error_message, latency_ms"
        " FROM swift_order_logs WHERE swift_order_id = ANY(%s)"
        " ORDER BY swift_order_id, timestamp, created_at", (swift_order_ids,))
    events: dict[str, list[dict]] = {order_id: [] for order_id in swift_order_ids}
    for row in rows:
        events[row.pop("swift_order_id")].append(row)
    return events


def retry_jobs(db: Database, statuses: tuple[str, ...], bot_id: str | None = None,
               limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """trade_retry_queue rows in these statuses, critical first, then by due time."""
    return db.fetchall(
        "SELECT id, bot_id, market, side, size, reduce_only, priority, status, attempts,"
        " max_attempts, cooldown_retries, next_retry_at, last_error, outcome_unknown,"
        " is_remainder, swift_attempts, original_execution_method, signal_id,"
        " original_trade_id, created_at"
        " FROM trade_retry_queue WHERE status = ANY(%(statuses)s)"
        " AND (%(bot)s::text IS NULL OR bot_id = %(bot)s)"
        " ORDER BY (priority = 'critical') DESC, next_retry_at, id LIMIT %(limit)s",
        {"statuses": list(statuses), "bot": bot_id, "limit": limit})


def iou_rows(db: Database, statuses: tuple[str, ...],
             limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """pending_profit_shares rows in these statuses, oldest first."""
    return db.fetchall(
        "SELECT id, subscriber_bot_id, published_bot_id, trade_id, subscriber_wallet_address,"
        " creator_wallet_address, amount, realized_pnl, profit_share_percent, status,"
        " attempts, last_error, next_attempt_at, expires_at, paid_tx_signature, paid_at,"
        " void_reason, created_at"
        " FROM pending_profit_shares WHERE status = ANY(%s)"
        " ORDER BY created_at, id LIMIT %s", (list(statuses), limit))
