"""Migrations on the embedded PostgreSQL: idempotent, recorded, complete, tamper-evident."""

from __future__ import annotations

import psycopg2
import pytest

from storage.database import Database
from storage.migrations import MigrationError, available, migrate

APPENDIX_E = {
    "trading_bots": {"swift_enabled", "swift_fallback_enabled"},
    "bot_trades": {"execution_method", "swift_order_id", "swift_status", "swift_submitted_at",
                   "swift_filled_at", "auction_duration_ms", "keeper_pubkey",
                   "price_improvement", "fallback_reason"},
    "trade_retry_queue": {"swift_order_id", "original_execution_method", "swift_attempts",
                          "last_swift_error", "cooldown_retries"},
    "swift_order_logs": {"id", "trade_id", "swift_order_id", "event_type", "timestamp",
                         "request_payload", "response_payload", "error_code", "error_message",
                         "latency_ms", "created_at"},
}
LATER_PATHS = {"wallets", "published_bots", "subscriptions", "pending_profit_shares",
               "webhook_signals"}


def columns(db: Database, table: str) -> set[str]:
    rows = db.fetchall(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
    return {r["column_name"] for r in rows}


def test_applying_twice_applies_once(database_url: str) -> None:
    db = Database(database_url, size=2)
    try:
        first = migrate(db)
        second = migrate(db)
        assert first == [m.version for m in available()] and first
        assert second == []
        recorded = db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in recorded] == first
    finally:
        db.close()


def test_schema_has_appendix_e_and_the_later_paths_tables(db: Database) -> None:
    for table, wanted in APPENDIX_E.items():
        assert wanted <= columns(db, table), f"{table} lacks {wanted - columns(db, table)}"
    for table in LATER_PATHS:
        assert columns(db, table), f"missing table {table}"
    indexes = {r["indexname"] for r in db.fetchall(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'swift_order_logs'")}
    assert {"idx_swift_order_logs_trade_id", "idx_swift_order_logs_swift_order_id",
            "idx_swift_order_logs_event_type"} <= indexes


def test_an_edited_applied_migration_is_refused(db: Database) -> None:
    db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="edited"):
        migrate(db)


def _bot(db: Database) -> str:
    db.execute("INSERT INTO wallets (address, agent_public_key) VALUES ('W1', 'A1')")
    row = db.fetchone(
        "INSERT INTO trading_bots (wallet_address, name, market, market_index, max_position_size)"
        " VALUES ('W1', 'b', 'SOL-PERP', 0, 100) RETURNING id")
    assert row is not None
    return row["id"]


def test_the_signal_hash_is_unique(db: Database) -> None:
    bot = _bot(db)
    insert = "INSERT INTO webhook_signals (trading_bot_id, signal_hash) VALUES (%s, %s)"
    db.execute(insert, (bot, "h1"))
    with pytest.raises(psycopg2.errors.UniqueViolation):
        db.execute(insert, (bot, "h1"))
    db.execute(insert, (bot, "h2"))  # the pool and the connection survived the violation
    assert db.fetchone("SELECT count(*) AS n FROM webhook_signals")["n"] == 2
