"""Reads behind the operator's daily commands: bot states, Swift order events, queues, IOUs.

Every read selects named columns only: no webhook secret hash, policy HMAC, sealed key, signed
payload or retry webhook payload ever leaves this module. The switches these commands flip are
written by storage.bot_controls.
"""

from __future__ import annotations

from typing import Any

from storage.database import Database

RETRY_STATUSES = ("pending", "running", "failed", "done")
IOU_STATUSES = ("pending", "sending", "paid", "void")
LIST_LIMIT = 1000


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
