"""pending_profit_shares on PostgreSQL: one share per trade, SKIP LOCKED claims, leases."""

from __future__ import annotations

from decimal import Decimal

import gevent
import psycopg2
import pytest

from storage.database import Database
from storage.profit_shares import (
    NewShare,
    ShareWaiter,
    claim_due,
    clear_attempt,
    count_unpaid,
    create_share,
    get_share,
    mark_paid,
    mark_retry,
    mark_void,
    record_attempt,
    share_for_trade,
)
from tests.storage.test_signals import make_bot


def make_trade(db: Database, bot: str) -> str:
    row = db.fetchone(
        "INSERT INTO bot_trades (trading_bot_id, wallet_address, market, side, size,"
        " reduce_only, status) VALUES (%s, 'W', 'SOL-PERP', 'short', 1, true, 'completed')"
        " RETURNING id", (bot,))
    assert row is not None
    return row["id"]


def make_published(db: Database, source_bot: str) -> str:
    row = db.fetchone("INSERT INTO published_bots (trading_bot_id, creator_wallet_address,"
                      " profit_share_percent) VALUES (%s, 'W', 10) RETURNING id", (source_bot,))
    assert row is not None
    return row["id"]


@pytest.fixture
def owed(db: Database) -> NewShare:
    """A share owed for a new closing trade of a subscriber bot."""
    source, subscriber = make_bot(db, "source"), make_bot(db, "subscriber")
    published = make_published(db, source)
    return NewShare(trade_id=make_trade(db, subscriber), subscriber_bot_id=subscriber,
                    published_bot_id=published, subscriber_wallet_address="W",
                    creator_wallet_address="W", amount=Decimal("1.234567"),
                    realized_pnl=Decimal("12.345678"), profit_share_percent=Decimal("10"),
                    ttl_s=3600)


def test_a_replayed_close_never_creates_a_second_share(db: Database, owed: NewShare) -> None:
    first, created = create_share(db, owed)
    again, created_again = create_share(db, owed)
    assert created and not created_again and again == first
    share = get_share(db, first)
    assert share is not None and share.idempotency_key == owed.trade_id
    assert share.amount == Decimal("1.234567") and share.status == "pending"
    assert share_for_trade(db, owed.trade_id) == share
    assert count_unpaid(db) == 1


def test_concurrent_replays_make_one_row(database_url: str, db: Database,
                                         owed: NewShare) -> None:
    pools = [Database(database_url, size=2) for _ in range(4)]
    try:
        results = [g.get(timeout=30) for g in
                   [gevent.spawn(create_share, pool, owed) for pool in pools]]
    finally:
        for pool in pools:
            pool.close()
    assert len({share_id for share_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert db.fetchone("SELECT count(*) AS n FROM pending_profit_shares")["n"] == 1


def test_due_shares_are_claimed_once_and_future_ones_wait(db: Database, owed: NewShare) -> None:
    share_id, _ = create_share(db, owed)
    (claimed,) = claim_due(db, "w1", limit=10, lease_s=60)
    assert claimed.id == share_id and claimed.status == "sending" and claimed.claimed_by == "w1"
    assert claim_due(db, "w2", limit=10, lease_s=60) == []  # held under a lease
    assert mark_retry(db, share_id, "w1", 3600, "rpc_unreachable")
    assert claim_due(db, "w2", limit=10, lease_s=60) == []  # not due for an hour
    row = get_share(db, share_id)
    assert row is not None and (row.status, row.attempts, row.last_error) == (
        "pending", 1, "rpc_unreachable")
    db.execute("UPDATE pending_profit_shares SET next_attempt_at = now()")
    assert [s.id for s in claim_due(db, "w2", limit=10, lease_s=60)] == [share_id]


def test_two_workers_never_claim_the_same_share(database_url: str, db: Database,
                                                owed: NewShare) -> None:
    ids = set()
    for _ in range(30):
        trade = make_trade(db, owed.subscriber_bot_id)
        ids.add(create_share(db, NewShare(**{**owed.__dict__, "trade_id": trade}))[0])
    first, second = Database(database_url, size=4), Database(database_url, size=4)
    got_a: list[str] = []
    got_b: list[str] = []
    try:
        while True:  # each round, both workers claim at the same time
            rounds = [gevent.spawn(claim_due, pool, worker, limit=3, lease_s=60)
                      for pool, worker in ((first, "a"), (second, "b"))]
            gevent.joinall(rounds, timeout=30, raise_error=True)
            batch_a, batch_b = (r.get(block=False) for r in rounds)
            if not batch_a and not batch_b:
                break
            got_a += [s.id for s in batch_a]
            got_b += [s.id for s in batch_b]
    finally:
        first.close()
        second.close()
    assert set(got_a).isdisjoint(got_b) and set(got_a) | set(got_b) == ids
    assert len(got_a) + len(got_b) == len(ids)  # nobody claimed one twice


def test_a_payment_is_recorded_before_sending_and_survives_a_dead_worker(
        db: Database, owed: NewShare) -> None:
    share_id, _ = create_share(db, owed)
    claim_due(db, "dead", limit=1, lease_s=60)
    assert record_attempt(db, share_id, "dead", "sig1", 1234)
    db.execute("UPDATE pending_profit_shares SET claimed_until = now() - interval '1 second'")
    (again,) = claim_due(db, "new", limit=1, lease_s=60)
    assert (again.inflight_signature, again.inflight_last_valid_block_height) == ("sig1", 1234)
    assert not record_attempt(db, share_id, "dead", "sig2", 1300)  # the claim moved on
    assert not mark_void(db, share_id, "new", "too late")  # never void an unresolved payment
    assert mark_paid(db, share_id, "sig1")
    assert not mark_paid(db, share_id, "sig1")  # paid once
    row = get_share(db, share_id)
    assert row is not None and (row.status, row.paid_tx_signature, row.inflight_signature) == (
        "paid", "sig1", None)
    assert claim_due(db, "other", limit=1, lease_s=60) == [] and count_unpaid(db) == 0


def test_a_retry_keeps_an_unresolved_payment_and_clear_forgets_a_failed_one(
        db: Database, owed: NewShare) -> None:
    share_id, _ = create_share(db, owed)
    claim_due(db, "w", limit=1, lease_s=60)
    record_attempt(db, share_id, "w", "sig1", 99)
    assert mark_retry(db, share_id, "w", 0, "payment pending", count_attempt=False)
    (again,) = claim_due(db, "w", limit=1, lease_s=60)
    assert again.inflight_signature == "sig1" and again.attempts == 0
    assert clear_attempt(db, share_id, "w", "payment expired")
    assert mark_void(db, share_id, "w", "gave up", count_attempt=True)
    row = get_share(db, share_id)
    assert row is not None and (row.status, row.void_reason, row.attempts) == (
        "void", "gave up", 1)
    assert count_unpaid(db) == 0


def test_status_is_constrained(db: Database, owed: NewShare) -> None:
    share_id, _ = create_share(db, owed)
    with pytest.raises(psycopg2.IntegrityError):
        db.execute("UPDATE pending_profit_shares SET status = 'maybe' WHERE id = %s",
                   (share_id,))


def test_the_waiter_is_told_of_settlement(database_url: str, db: Database,
                                          owed: NewShare) -> None:
    share_id, _ = create_share(db, owed)
    waiter = ShareWaiter(database_url)
    try:
        with pytest.raises(TimeoutError):
            waiter.wait(share_id, 0.05)
        claim_due(db, "w", limit=1, lease_s=60)
        settle = gevent.spawn(mark_paid, db, share_id, "sig")
        assert waiter.wait(share_id, 10)["status"] == "paid"
        assert settle.get(timeout=10)
    finally:
        waiter.close()
