"""Per-bot leases on PostgreSQL: one live holder, hand-over only after expiry, fenced claims."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from security.emergency_stop import StopMode
from storage.bot_leases import (
    LeaseLost,
    acquire,
    acquire_all,
    foreign_holders,
    holder_id,
    holder_of,
    release_all,
    wake_holder,
    woken_bot,
)
from storage.database import Database
from storage.guard_rows import (
    GuardQuery,
    open_trades_guarded,
    read_guard_rows,
)
from storage.notify import Listener
from storage.retry_queue import NewJob, claim_due, enqueue
from storage.signals import claim_next_many, record_signal
from storage.trades import NewTrade, open_trade
from tests.storage.test_signals import make_bot


def expire(db: Database, bot: str) -> None:
    """Make the bot's lease run out now (as if its holder died a TTL ago)."""
    db.execute("UPDATE bot_leases SET expires_at = now() - interval '1 second' WHERE bot_id = %s",
               (bot,))


def test_the_first_daemon_holds_every_bot_and_the_second_none(db: Database) -> None:
    bots = {make_bot(db, "a"), make_bot(db, "b")}
    assert acquire_all(db, "one", 60) == dict.fromkeys(bots, 1)
    assert acquire_all(db, "two", 60) == {}
    assert acquire(db, next(iter(bots)), "two", 60) is None
    (other,) = foreign_holders(db, "two")
    assert (other.holder, other.bots) == ("one", 2)
    assert foreign_holders(db, "one") == []
    # a renewal by the holder keeps the epoch; a bot created since is taken too
    late = make_bot(db, "c")
    assert acquire_all(db, "one", 60) == dict.fromkeys(bots | {late}, 1)


def test_a_lease_changes_hands_only_once_run_out_and_then_its_epoch_grows(db: Database) -> None:
    bot = make_bot(db)
    assert acquire(db, bot, "one", 60) == 1
    assert acquire(db, bot, "two", 60) is None and holder_of(db, bot) == "one"
    expire(db, bot)
    assert holder_of(db, bot) is None
    assert acquire(db, bot, "two", 60) == 2 and holder_of(db, bot) == "two"
    assert acquire(db, bot, "one", 60) is None
    assert release_all(db, "two") == 1  # a clean stop: free at once
    assert acquire_all(db, "one", 60) == {bot: 3}


def test_only_the_holder_claims_signals_retry_jobs_and_opens_trades(db: Database) -> None:
    bot = make_bot(db)
    acquire(db, bot, "one", 60)
    signal = record_signal(db, bot, "h1", (), "webhook", "x", {}).signal_id
    job = enqueue(db, NewJob(bot_id=bot, wallet_address="W", market="SOL-PERP", side="long",
                             size=Decimal(1), reduce_only=False, priority="normal",
                             max_attempts=5))
    trade = NewTrade(bot, signal, "W", "SOL-PERP", "long", 10**9, False, "swift")
    assert claim_next_many(db, [(bot, None)], "two")[0] is None
    assert claim_due(db, "w", 10, 60, holder="two") == []
    with pytest.raises(LeaseLost):
        open_trade(db, trade, holder="two")
    assert db.fetchone("SELECT count(*) AS n FROM bot_trades")["n"] == 0
    claimed = claim_next_many(db, [(bot, None)], "one")[0]
    assert claimed is not None and claimed.id == signal
    assert [j.id for j in claim_due(db, "w", 10, 60, holder="one")] == [job]
    assert open_trade(db, trade, holder="one")
    expire(db, bot)  # the holder's lease ran out (an outage longer than its life)
    with pytest.raises(LeaseLost):
        open_trade(db, trade, holder="one")


def test_a_wake_up_is_passed_to_the_holder_only(database_url: str, db: Database) -> None:
    bot = make_bot(db)
    assert wake_holder(db, bot) is None  # nobody holds it: nothing to tell
    acquire(db, bot, "one", 60)
    listener = Listener(database_url, "bot_lease_wake")
    try:
        assert wake_holder(db, bot) == "one"
        (payload,) = listener.next_payloads(5.0)
    finally:
        listener.close()
    assert woken_bot(payload, "one") == bot
    assert woken_bot(payload, "two") is None


def test_a_state_directory_keeps_its_holder_id(tmp_path: Path) -> None:
    first = holder_id(tmp_path / "state")
    assert first == holder_id(tmp_path / "state")
    assert first != holder_id(tmp_path / "other")
    assert (tmp_path / "state" / "holder_id").stat().st_mode & 0o777 == 0o600


def test_the_claim_at_a_known_epoch_is_the_lease_check(db: Database) -> None:
    bot = make_bot(db)
    assert acquire(db, bot, "one", 60) == 1
    first = record_signal(db, bot, "h1", (), "webhook", "x", {}).signal_id
    record_signal(db, bot, "h2", (), "webhook", "y", {})
    assert claim_next_many(db, [(bot, 2)], "one")[0] is None  # not at that epoch: nothing claimed
    claimed = claim_next_many(db, [(bot, 1)], "one")[0]
    assert claimed is not None and claimed.id == first and claimed.more_waiting
    last = claim_next_many(db, [(bot, 1)], "one")[0]
    assert last is not None and not last.more_waiting


def test_the_trade_row_and_what_its_guard_reads_are_one_fenced_statement(db: Database) -> None:
    bot = make_bot(db)
    acquire(db, bot, "one", 60)
    trade = NewTrade(bot, None, "W", "SOL-PERP", "long", 10**9, False, "swift")
    query = GuardQuery(bot, "W", None)
    assert isinstance(open_trades_guarded(db, [(trade, query)], "two")[0], LeaseLost)
    assert db.fetchone("SELECT count(*) AS n FROM bot_trades")["n"] == 0
    ((trade_id, rows),) = open_trades_guarded(db, [(trade, query)], "one")
    stored = db.fetchone("SELECT trading_bot_id, status FROM bot_trades WHERE id = %s",
                         (trade_id,))
    assert stored == {"trading_bot_id": bot, "status": "pending"}
    assert rows == read_guard_rows(db, query)  # the same reads as the guard's own
    assert rows.bot_exists and rows.published_id is None and rows.publication is None


def test_one_statement_opens_the_trades_of_many_bots_each_fenced_by_its_own_lease(
        db: Database) -> None:
    ours, theirs, another = make_bot(db, "a"), make_bot(db, "b"), make_bot(db, "c")
    for bot in (ours, another):
        acquire(db, bot, "one", 60)
    acquire(db, theirs, "two", 60)
    db.execute("UPDATE wallets SET emergency_stop_triggered = true WHERE address = 'W'")
    orders = [(NewTrade(bot, None, "W", "SOL-PERP", side, 10**9, False, "swift"),
               GuardQuery(bot, "W", None))
              for bot, side in ((ours, "long"), (theirs, "short"), (another, "short"))]
    opened = open_trades_guarded(db, orders, "one")
    assert isinstance(opened[1], LeaseLost)  # fenced out: no row for it
    written = {}
    for (trade, query), answer in zip(orders, opened, strict=True):
        if isinstance(answer, LeaseLost):
            continue
        trade_id, rows = answer
        written[trade_id] = trade.bot_id
        assert rows == read_guard_rows(db, query)
        assert rows.wallet_stop.mode is StopMode.STOP  # the stop set before: what each saw
    stored = db.fetchall("SELECT id, trading_bot_id, side FROM bot_trades")
    assert {r["id"]: r["trading_bot_id"] for r in stored} == written
    assert {r["trading_bot_id"]: r["side"] for r in stored} == {ours: "long", another: "short"}
    with pytest.raises(ValueError):
        open_trades_guarded(db, orders[:1] * 2, "one")


def test_an_order_the_database_refuses_fails_alone(db: Database) -> None:
    """A row the database refuses (a bot that does not exist, a value too long) fails its own
    order; the others of the statement are written."""
    good, other = make_bot(db, "a"), make_bot(db, "b")
    orders = [(NewTrade(bot, None, "W", "SOL-PERP", side, 10**9, False, "swift"),
               GuardQuery(bot, "W", None))
              for bot, side in ((good, "long"), ("no-such-bot", "long"), (other, "x" * 11))]
    first, ghost, too_long = open_trades_guarded(db, orders, None)  # no lease fence here
    assert isinstance(ghost, psycopg2.IntegrityError)
    assert isinstance(too_long, psycopg2.DataError)
    assert not isinstance(first, Exception)
    stored = db.fetchall("SELECT id, trading_bot_id FROM bot_trades")
    assert stored == [{"id": first[0], "trading_bot_id": good}]
