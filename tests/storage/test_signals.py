"""Signal rows on PostgreSQL: dedup (also under concurrency), claim-once, backlog, story."""

from __future__ import annotations

import gevent
import pytest

from storage.bot_leases import acquire
from storage.database import Database
from storage.signals import (
    SignalStatus,
    SignalWaiter,
    claim_next_many,
    finish_signal,
    pending_signals,
    record_rejection,
    record_signal,
    signal_story,
)
from storage.wallets import signing_rows


def make_bot(db: Database, name: str = "b") -> str:
    db.execute("INSERT INTO wallets (address, agent_public_key) VALUES (%s, %s)"
               " ON CONFLICT DO NOTHING", ("W", "A"))
    row = db.fetchone(
        "INSERT INTO trading_bots (wallet_address, name, market, market_index, max_position_size,"
        " drift_subaccount_id) VALUES ('W', %s, 'SOL-PERP', 0, 100, (SELECT count(*) FROM"
        " trading_bots WHERE wallet_address = 'W')) RETURNING id", (name,))  # own sub-account
    assert row is not None
    return row["id"]


def test_the_same_hash_records_once(db: Database) -> None:
    bot = make_bot(db)
    first = record_signal(db, bot, "h1", (), "webhook", "body", {"a": 1})
    again = record_signal(db, bot, "h1", (), "webhook", "body", {"a": 1})
    assert not first.duplicate and again.duplicate and again.signal_id == first.signal_id


def test_a_hash_of_the_previous_window_counts_as_duplicate(db: Database) -> None:
    bot = make_bot(db)
    first = record_signal(db, bot, "window-7", ("window-6",), "webhook", "b", {})
    straddling = record_signal(db, bot, "window-8", ("window-7",), "webhook", "b", {})
    assert straddling.duplicate and straddling.signal_id == first.signal_id


def test_concurrent_identical_deliveries_make_one_row(db: Database) -> None:
    bot = make_bot(db)
    racers = [gevent.spawn(record_signal, db, bot, "same", (), "webhook", "b", {})
              for _ in range(8)]
    results = [g.get(timeout=10) for g in racers]
    assert len({r.signal_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert db.fetchone("SELECT count(*) AS n FROM webhook_signals")["n"] == 1


def test_a_signal_is_claimed_once_and_the_backlog_is_in_arrival_order(db: Database) -> None:
    bot = make_bot(db)
    ids = [record_signal(db, bot, f"h{i}", (), "webhook", None, {}).signal_id for i in range(3)]
    assert pending_signals(db, bot) == ids
    acquire(db, bot, "one", 60)
    claimed = [claim_next_many(db, [(bot, None)], "one")[0] for _ in range(4)]
    assert [c.id if c else None for c in claimed] == [*ids, None]  # each once, in order
    assert pending_signals(db, bot) == []


def test_one_statement_claims_for_many_bots_each_its_own_oldest(db: Database) -> None:
    """Answered in the order asked: a bot's oldest accepted signal, None for a bot with
    nothing waiting, for one whose lease is elsewhere or at another epoch."""
    busy, idle, elsewhere, moved = (make_bot(db, name) for name in ("a", "b", "c", "d"))
    oldest = {bot: record_signal(db, bot, f"{bot}-1", (), "webhook", None, {}).signal_id
              for bot in (busy, elsewhere, moved)}
    record_signal(db, busy, "busy-2", (), "webhook", None, {})
    epochs = {bot: acquire(db, bot, "one", 60) for bot in (busy, idle, moved)}
    acquire(db, elsewhere, "two", 60)
    claimed = claim_next_many(db, [(moved, 7), (busy, epochs[busy]), (idle, None),
                                   (elsewhere, None)], "one")
    assert [c.id if c else None for c in claimed] == [None, oldest[busy], None, None]
    assert claimed[1] is not None and claimed[1].more_waiting
    assert pending_signals(db, moved) == [oldest[moved]]  # nothing taken from the others
    with pytest.raises(ValueError):
        claim_next_many(db, [(busy, None), (busy, None)], "one")


def test_a_claim_reads_the_rows_the_signal_key_opens_from(db: Database) -> None:
    """The claim is the signal's one read of its bot's grant and wallet envelopes: the same
    rows `signing_rows` reads, kept out of the row's repr (they are sealed key material)."""
    bot = make_bot(db)
    db.execute("UPDATE wallets SET agent_private_key_encrypted_v3 = 'sealed-v3' WHERE"
               " address = 'W'")
    db.execute("UPDATE trading_bots SET umk_encrypted_for_bot = 'sealed-umk',"
               " execution_active = true WHERE id = %s", (bot,))
    record_signal(db, bot, "k1", (), "webhook", None, {})
    acquire(db, bot, "one", 60)
    claimed = claim_next_many(db, [(bot, None)], "one")[0]
    assert claimed is not None and claimed.signing is not None
    assert claimed.signing == signing_rows(db, bot)
    grant, wallet = claimed.signing
    assert grant is not None and grant.envelope == "sealed-umk" and grant.execution_active
    assert wallet is not None and wallet.v3_envelope == "sealed-v3"
    assert "sealed" not in repr(claimed)


def test_rejections_are_recorded_and_never_pending(db: Database) -> None:
    bot = make_bot(db)
    rejected = record_rejection(db, bot, "webhook", "wrong secret", "{}")
    row = db.fetchone("SELECT status, error FROM webhook_signals WHERE id = %s", (rejected,))
    assert row == {"status": "rejected", "error": "wrong secret"}
    assert pending_signals(db, bot) == []


def test_story_shows_the_signal_its_trades_and_each_subscriber_copy(db: Database) -> None:
    source, follower = make_bot(db, "source"), make_bot(db, "follower")
    parent = record_signal(db, source, "p", (), "webhook", "b", {"kind": "open"}).signal_id
    child = record_signal(db, follower, "c", (), "fanout", None, {}, parent).signal_id
    for signal, bot in ((parent, source), (child, follower)):
        db.execute("INSERT INTO bot_trades (trading_bot_id, signal_id, wallet_address, market,"
                   " side, size, status, execution_method) VALUES"
                   " (%s, %s, 'W', 'SOL-PERP', 'long', 1, 'completed', 'swift')", (bot, signal))
    finish_signal(db, child, "done", {"orders": 1})
    story = signal_story(db, parent)
    assert story is not None and story["id"] == parent
    assert [t["trading_bot_id"] for t in story["trades"]] == [source]
    (copy,) = story["subscribers"]
    assert copy["trading_bot_id"] == follower and copy["status"] == "done"
    assert [t["execution_method"] for t in copy["trades"]] == ["swift"]
    assert signal_story(db, "missing") is None


def test_a_signal_ends_only_in_a_final_status(db: Database) -> None:
    signal = record_signal(db, make_bot(db), "f1", (), "webhook", None, {}).signal_id
    for status in ("processing", "accepted", "routed"):
        with pytest.raises(ValueError):
            finish_signal(db, signal, status, {})
    finish_signal(db, signal, SignalStatus.SKIPPED, {}, "bot_paused")
    row = db.fetchone("SELECT status FROM webhook_signals WHERE id = %s", (signal,))
    assert row == {"status": "skipped"}


def test_a_waiter_is_told_when_signals_finish(database_url: str, db: Database) -> None:
    bot = make_bot(db)
    first = record_signal(db, bot, "w1", (), "webhook", None, {}).signal_id
    second = record_signal(db, bot, "w2", (), "webhook", None, {}).signal_id
    finish_signal(db, first, "done", {})  # finished before the wait: read, not missed
    waiter = SignalWaiter(database_url)
    try:
        later = gevent.spawn(finish_signal, db, second, "failed", {}, "venue error")
        assert waiter.wait([first, second], timeout_s=10) == {first: "done", second: "failed"}
        later.get(timeout=5)
        third = record_signal(db, bot, "w3", (), "webhook", None, {}).signal_id
        with pytest.raises(TimeoutError):
            waiter.wait([third], timeout_s=0.2)
    finally:
        waiter.close()
