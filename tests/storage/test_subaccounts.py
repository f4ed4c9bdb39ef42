"""Migration 0011 on a database from before per-bot sub-accounts, and the allocation queries."""

from __future__ import annotations

from decimal import Decimal

import psycopg2
import pytest

from storage import subaccounts
from storage.database import Database
from storage.migrations import available, migrate

VERSION = 11


def _migrate_before(db: Database, version: int) -> None:
    """Apply (and record) the migrations older than `version`, as an older release did."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT"
                    " NULL, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT"
                    " now())")
        for m in available():
            if m.version >= version:
                break
            cur.execute(m.sql)
            cur.execute("INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)", (m.version, m.name, m.checksum))


def _bot(db: Database, bot_id: str, wallet: str, minute: int, sub: int = 0) -> None:
    db.execute("INSERT INTO trading_bots (id, wallet_address, name, market, market_index,"
               " max_position_size, drift_subaccount_id, created_at) VALUES (%s, %s, %s,"
               " 'SOL-PERP', 0, 100, %s, timestamptz '2026-01-01' + %s * interval '1 minute')",
               (bot_id, wallet, bot_id, sub, minute))


def test_the_oldest_bot_keeps_sub_account_0_and_later_ones_are_marked(database_url: str) -> None:
    db = Database(database_url, size=2)
    try:
        _migrate_before(db, VERSION)
        for wallet in ("w1", "w2"):
            db.execute("INSERT INTO wallets (address, agent_public_key) VALUES (%s, %s)",
                       (wallet, f"agent-{wallet}"))
        _bot(db, "b-late", "w1", 3)
        _bot(db, "a-first", "w1", 1)
        _bot(db, "c-later", "w1", 5)
        _bot(db, "d-alone", "w2", 2)
        assert VERSION in migrate(db)
        shared = subaccounts.shared_bots(db)
        assert [(s.bot_id, s.keeper_bot_id, s.drift_subaccount_id) for s in shared] == [
            ("b-late", "a-first", 0), ("c-later", "a-first", 0)]
        assert shared[0].capital_usd is None and shared[0].max_position_size == Decimal(100)
        assert subaccounts.shared_count(db) == 2 and not subaccounts.is_shared(db, "a-first")
        assert subaccounts.next_subaccount_id(db, "w1") == 1
        assert subaccounts.next_subaccount_id(db, "w3") == 0
        with pytest.raises(psycopg2.IntegrityError):  # two unmarked bots never share one
            _bot(db, "e-new", "w2", 9)
        assert subaccounts.move_bot(db, "b-late", 0, 1, Decimal(25), ["sig"])
        assert not subaccounts.move_bot(db, "b-late", 0, 1, Decimal(25), ["sig"])  # once
        assert subaccounts.holders(db, "w1", 1) == ["b-late"]
        (move,) = subaccounts.moves(db, "b-late")
        assert (move["from_subaccount_id"], move["to_subaccount_id"], move["funded_quote"],
                move["tx_signatures"]) == (0, 1, Decimal(25), ["sig"])
        assert [s.bot_id for s in subaccounts.shared_bots(db, "w1")] == ["c-later"]
        with pytest.raises(psycopg2.IntegrityError):  # nor can a move land on a taken id
            subaccounts.move_bot(db, "c-later", 0, 1, Decimal(0), [])
    finally:
        db.close()
