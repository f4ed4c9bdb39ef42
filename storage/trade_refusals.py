"""Refused trades: one row per order the pre-trade gate stopped, with its fixed reason label."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.database import Database


@dataclass(frozen=True)
class TradeRefusal:
    """Why (fixed label), which bot and wallet, what kind of order, when."""

    id: int
    trading_bot_id: str | None
    wallet_address: str | None
    reason: str
    origin: str
    kind: str
    reduce_only: bool
    created_at: datetime


def record_refusal(
    db: Database, *, trading_bot_id: str | None, wallet_address: str | None, reason: str,
    origin: str, kind: str, reduce_only: bool,
) -> int:
    """Store one refusal and return its id."""
    row = db.fetchone(
        "INSERT INTO trade_refusals (trading_bot_id, wallet_address, reason, origin, kind,"
        " reduce_only) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (trading_bot_id, wallet_address, reason, origin, kind, reduce_only),
    )
    assert row is not None
    return int(row["id"])


def refusals_for_bot(db: Database, trading_bot_id: str) -> list[TradeRefusal]:
    """A bot's refusals, oldest first."""
    rows: list[dict[str, Any]] = db.fetchall(
        "SELECT id, trading_bot_id, wallet_address, reason, origin, kind, reduce_only, created_at"
        " FROM trade_refusals WHERE trading_bot_id = %s ORDER BY id",
        (trading_bot_id,),
    )
    return [TradeRefusal(**r) for r in rows]
