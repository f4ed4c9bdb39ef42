"""The retry queue on PostgreSQL: due order, SKIP LOCKED claims, leases, settling."""

from __future__ import annotations

from decimal import Decimal

import gevent

from storage.database import Database
from storage.retry_queue import (
    JobStatus,
    NewJob,
    claim_due,
    depth_by_priority,
    enqueue,
    mark_sending,
    settle_done,
    settle_failed,
    settle_retry,
)
from tests.storage.test_signals import make_bot


def job(bot: str, priority: str = "normal", reduce_only: bool = False) -> NewJob:
    return NewJob(bot_id=bot, wallet_address="W", market="SOL-PERP", side="long",
                  size=Decimal("1.5"), reduce_only=reduce_only, priority=priority,
                  max_attempts=10 if priority == "critical" else 5)


def test_due_jobs_are_claimed_critical_first_and_future_ones_wait(db: Database) -> None:
    bot = make_bot(db)
    normal = enqueue(db, job(bot))
    critical = enqueue(db, job(bot, "critical", True))
    later = enqueue(db, job(bot), delay_s=3600)
    claimed = claim_due(db, "w1", limit=10, lease_s=60)
    assert [j.id for j in claimed] == [critical, normal]
    assert later not in {j.id for j in claimed}
    assert {j.status for j in claimed} == {JobStatus.RUNNING}
    assert claim_due(db, "w2", limit=10, lease_s=60) == []  # running jobs are not due


def test_two_schedulers_never_claim_the_same_job(database_url: str, db: Database) -> None:
    bot = make_bot(db)
    ids = {enqueue(db, job(bot)) for _ in range(40)}
    first, second = Database(database_url, size=4), Database(database_url, size=4)

    def drain(pool: Database, worker: str) -> list[str]:
        taken: list[str] = []
        while batch := claim_due(pool, worker, limit=3, lease_s=60):
            taken += [j.id for j in batch]
            gevent.sleep(0)  # let the other scheduler interleave its claims
        return taken

    a, b = gevent.spawn(drain, first, "a"), gevent.spawn(drain, second, "b")
    got_a, got_b = a.get(timeout=30), b.get(timeout=30)
    first.close()
    second.close()
    assert set(got_a).isdisjoint(got_b)
    assert set(got_a) | set(got_b) == ids
    assert got_a and got_b  # both really worked


def test_an_expired_lease_is_reclaimed_with_its_outcome_unknown(db: Database) -> None:
    bot = make_bot(db)
    job_id = enqueue(db, job(bot, "critical", True))
    (claimed,) = claim_due(db, "dead-worker", limit=1, lease_s=60)
    assert mark_sending(db, job_id, "dead-worker", claimed.claimed_at, "uuid1234", swift=True)
    db.execute("UPDATE trade_retry_queue SET claimed_at = now() - interval '10 minutes'")
    (again,) = claim_due(db, "new-worker", limit=1, lease_s=60)
    assert again.id == job_id and again.outcome_unknown is True
    assert again.pending_order_ref == "uuid1234" and again.swift_attempts == 1
    assert not settle_done(db, job_id, "dead-worker")  # the old worker lost its claim
    assert not mark_sending(db, job_id, "new-worker", claimed.claimed_at, "again", False)
    assert settle_done(db, job_id, "new-worker")


def test_settling_retry_cooldown_and_failure(db: Database) -> None:
    bot = make_bot(db)
    job_id = enqueue(db, job(bot))
    claim_due(db, "w", 1, 60)
    assert settle_retry(db, job_id, "w", 0, "timeout", "swift timeout", cooldown=False)
    row = db.fetchone("SELECT * FROM trade_retry_queue WHERE id = %s", (job_id,))
    assert (row["status"], row["attempts"], row["last_swift_error"]) == (
        "pending", 1, "swift timeout")
    claim_due(db, "w", 1, 60)
    assert settle_retry(db, job_id, "w", 120, "timeout", None, cooldown=True)
    row = db.fetchone("SELECT * FROM trade_retry_queue WHERE id = %s", (job_id,))
    assert (row["attempts"], row["cooldown_retries"]) == (0, 1)
    assert claim_due(db, "w", 1, 60) == []  # the cooldown is two minutes away
    db.execute("UPDATE trade_retry_queue SET next_retry_at = now()")
    claim_due(db, "w", 1, 60)
    assert settle_failed(db, job_id, "w", "insufficient collateral")
    assert depth_by_priority(db) == {"critical": 0, "normal": 0}
