"""The audit trail on PostgreSQL: every code fits swift_order_logs, swift_status keeps its four
values, retry jobs carry their Swift order and a close's entry price, old rows are migrated."""

from __future__ import annotations

from decimal import Decimal

import psycopg2
import pytest

from observability.trading_metrics import (
    EXPIRED_REASONS,
    INTERNAL_ERROR,
    NOT_SENT_REASONS,
    UNKNOWN_REASONS,
)
from storage.database import Database
from storage.migrations import available, migrate
from storage.retry_queue import NewJob, count_swift_attempt, enqueue
from storage.trades import (
    NewTrade,
    SwiftStatus,
    TradeStatus,
    log_swift_event,
    mark_swift_submitted,
    open_trade,
    update_trade,
)
from tests.storage.test_signals import make_bot
from venue.swift_errors import REASONS

EVERY_CODE = sorted(REASONS | set(EXPIRED_REASONS) | set(UNKNOWN_REASONS)
                    | set(NOT_SENT_REASONS) | {INTERNAL_ERROR})


def trade(db: Database, bot: str, reduce_only: bool = False, position: int | None = None,
          entry_quote: int | None = None) -> str:
    return open_trade(db, NewTrade(bot, None, "W", "SOL-PERP", "short" if reduce_only else "long",
                                   2_000_000_000, reduce_only, "swift", position, entry_quote))


def other_bot(db: Database) -> str:
    """A bot on another wallet."""
    db.execute("INSERT INTO wallets (address, agent_public_key) VALUES ('W2', 'A2')")
    row = db.fetchone(
        "INSERT INTO trading_bots (wallet_address, name, market, market_index, max_position_size)"
        " VALUES ('W2', 'other', 'SOL-PERP', 0, 100) RETURNING id")
    assert row is not None
    return row["id"]


def job(bot: str, original: str | None, reduce_only: bool) -> NewJob:
    return NewJob(bot_id=bot, wallet_address="W", market="SOL-PERP",
                  side="short" if reduce_only else "long", size=Decimal(2),
                  reduce_only=reduce_only, priority="critical" if reduce_only else "normal",
                  max_attempts=10, original_trade_id=original)


def test_every_code_the_taxonomy_produces_fits_error_code(db: Database) -> None:
    assert "insufficient_collateral" in EVERY_CODE and len("insufficient_collateral") > 20
    trade_id = trade(db, make_bot(db))
    for code in EVERY_CODE:
        log_swift_event(db, trade_id, "abcd1234", "failed", error_code=code,
                        error_message="x" * 500, response={"http_status": 400})
    rows = db.fetchall("SELECT error_code FROM swift_order_logs WHERE trade_id = %s", (trade_id,))
    assert sorted(r["error_code"] for r in rows) == EVERY_CODE


def test_swift_status_takes_only_the_plan_values(db: Database) -> None:
    trade_id = trade(db, make_bot(db))
    mark_swift_submitted(db, trade_id, "abcd1234", {"hash_key": "k", "max_slot": 10})
    assert db.fetchone("SELECT swift_status FROM bot_trades WHERE id = %s",
                       (trade_id,)) == {"swift_status": "submitted"}
    for status in SwiftStatus:
        update_trade(db, trade_id, swift_status=status)
        row = db.fetchone("SELECT swift_status FROM bot_trades WHERE id = %s", (trade_id,))
        assert row == {"swift_status": status.value}
    assert {s.value for s in SwiftStatus} == {"submitted", "filled", "failed", "fallback"}
    for state in ("expired", "rejected", "partial", "unknown", "not_sent"):
        with pytest.raises(ValueError):
            update_trade(db, trade_id, swift_status=state)


def test_a_trade_status_takes_only_trade_status_values(db: Database) -> None:
    trade_id = trade(db, make_bot(db))
    update_trade(db, trade_id, status=TradeStatus.PARTIAL)
    assert db.fetchone("SELECT status FROM bot_trades WHERE id = %s",
                       (trade_id,)) == {"status": "partial"}
    for state in ("filled", "refused", "not_filled"):
        with pytest.raises(ValueError):
            update_trade(db, trade_id, status=state)


def test_a_close_job_carries_its_swift_order_and_entry_price(db: Database) -> None:
    bot = make_bot(db)
    # a long of 2 SOL entered at 151.25 (quote_entry_amount is negative for a long)
    close = trade(db, bot, reduce_only=True, position=2_000_000_000, entry_quote=-302_500_000)
    mark_swift_submitted(db, close, "c1ose001", {"hash_key": "k", "max_slot": 10})
    job_id = enqueue(db, job(bot, close, reduce_only=True))
    row = db.fetchone("SELECT swift_order_id, entry_price FROM trade_retry_queue WHERE id = %s",
                      (job_id,))
    assert row == {"swift_order_id": "c1ose001", "entry_price": Decimal("151.250000")}

    # a short's close: the price is positive all the same
    short = trade(db, bot, reduce_only=True, position=-3_000_000_000, entry_quote=450_000_000)
    row = db.fetchone("SELECT swift_order_id, entry_price FROM trade_retry_queue WHERE id = %s",
                      (enqueue(db, job(bot, short, reduce_only=True)),))
    assert row == {"swift_order_id": None, "entry_price": Decimal("150.000000")}

    # an open has no entry price; a job without an original trade has neither
    opened = trade(db, bot, position=2_000_000_000, entry_quote=-302_500_000)
    mark_swift_submitted(db, opened, "open0001", {"hash_key": "k", "max_slot": 10})
    row = db.fetchone("SELECT swift_order_id, entry_price FROM trade_retry_queue WHERE id = %s",
                      (enqueue(db, job(bot, opened, reduce_only=False)),))
    assert row == {"swift_order_id": "open0001", "entry_price": None}
    row = db.fetchone("SELECT swift_order_id, entry_price FROM trade_retry_queue WHERE id = %s",
                      (enqueue(db, job(bot, None, reduce_only=True)),))
    assert row == {"swift_order_id": None, "entry_price": None}
    # an explicit entry price wins
    explicit = dict(job(bot, close, True).__dict__, entry_price=Decimal("140.5"))
    row = db.fetchone("SELECT entry_price FROM trade_retry_queue WHERE id = %s",
                      (enqueue(db, NewJob(**explicit)),))
    assert row == {"entry_price": Decimal("140.500000")}


def test_a_swift_attempt_of_a_job_becomes_its_swift_order(db: Database) -> None:
    bot, other = make_bot(db), other_bot(db)
    first = trade(db, bot, reduce_only=True, position=1_000_000_000, entry_quote=-150_000_000)
    mark_swift_submitted(db, first, "first001", {"hash_key": "k", "max_slot": 10})
    job_id = enqueue(db, job(bot, first, reduce_only=True))
    attempt = trade(db, bot, reduce_only=True)  # the retry's own trade, sent through Swift
    mark_swift_submitted(db, attempt, "retry001", {"hash_key": "k", "max_slot": 20})
    later_other = trade(db, other)  # another bot's order changes nothing here
    mark_swift_submitted(db, later_other, "other001", {"hash_key": "k", "max_slot": 30})
    count_swift_attempt(db, job_id, "swift_rejected:unavailable", 2)
    row = db.fetchone("SELECT swift_order_id, swift_attempts, last_swift_error"
                      " FROM trade_retry_queue WHERE id = %s", (job_id,))
    assert row == {"swift_order_id": "retry001", "swift_attempts": 2,
                   "last_swift_error": "swift_rejected:unavailable"}


def test_rows_written_before_0008_are_migrated(database_url: str) -> None:
    db = Database(database_url, size=2)
    try:
        with db.connection() as conn, conn.cursor() as cur:  # the schema as of 0007
            cur.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, checksum TEXT NOT NULL,"
                        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            for migration in available():
                if migration.version <= 7:
                    cur.execute(migration.sql)
                    cur.execute("INSERT INTO schema_migrations (version, name, checksum)"
                                " VALUES (%s, %s, %s)",
                                (migration.version, migration.name, migration.checksum))
        bot = make_bot(db)
        old = {}
        for state, method in (("filled", "swift"), ("partial", "swift"), ("unknown", "swift"),
                              ("expired", "legacy"), ("rejected", "legacy"),
                              ("not_sent", "legacy"), ("rejected", "swift"),
                              ("expired", "swift"), ("submitted", "swift")):
            trade_id = trade(db, bot, reduce_only=True, position=2_000_000_000,
                             entry_quote=-300_000_000)
            db.execute("UPDATE bot_trades SET swift_status = %s, execution_method = %s,"
                       " swift_order_id = 'old00001' WHERE id = %s", (state, method, trade_id))
            old[(state, method)] = trade_id
        with pytest.raises(psycopg2.errors.StringDataRightTruncation):
            log_swift_event(db, None, "old00001", "failed", error_code="insufficient_collateral")
        job_id = enqueue(db, job(bot, old[("rejected", "swift")], reduce_only=True))
        db.execute("UPDATE trade_retry_queue SET swift_order_id = NULL, entry_price = NULL"
                   " WHERE id = %s", (job_id,))

        assert 8 in migrate(db)

        status = {key: db.fetchone("SELECT swift_status FROM bot_trades WHERE id = %s",
                                   (trade_id,))["swift_status"] for key, trade_id in old.items()}
        assert status == {
            ("filled", "swift"): "filled", ("partial", "swift"): "filled",
            ("unknown", "swift"): "submitted", ("expired", "legacy"): "fallback",
            ("rejected", "legacy"): "fallback", ("not_sent", "legacy"): "fallback",
            ("rejected", "swift"): "failed", ("expired", "swift"): "failed",
            ("submitted", "swift"): "submitted"}
        row = db.fetchone("SELECT swift_order_id, entry_price FROM trade_retry_queue"
                          " WHERE id = %s", (job_id,))
        assert row == {"swift_order_id": "old00001", "entry_price": Decimal("150.000000")}
        log_swift_event(db, None, "old00001", "failed", error_code="insufficient_collateral")
    finally:
        db.close()
