"""RetryScheduler on the real queue: a due job of a bot this process holds reaches that bot's
actor (the bots supervisor's child by name) once; jobs not due or not ours stay queued."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pykka
import pytest
from gevent.event import AsyncResult
from solders.keypair import Keypair

from actors.bot import bot_child_name
from actors.messages import RunRetry
from actors.retry_scheduler import RetryScheduler
from actors.services import Services
from storage.bot_leases import acquire
from storage.bots import insert_bot
from storage.retry_queue import JobStatus, NewJob, enqueue, get_job
from storage.wallets import insert_wallet
from supervision import TerminateChild, request
from tests.actors.conftest import ASK_S, child, running, stand_in_bot

TICK_S = 0.05  # the scheduler's tick in these tests (the daemon's is RETRY_TICK_MS)


class Inbox:
    """What the stand-in bots received: (bot id, RunRetry) in order, and an event per job."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, RunRetry]] = []
        self._arrived: dict[str, AsyncResult] = {}

    def record(self, bot_id: str, run: RunRetry) -> None:
        self.runs.append((bot_id, run))
        self._arrived.setdefault(run.job.id, AsyncResult()).set(run)

    def wait(self, job_id: str) -> RunRetry:
        """The RunRetry of `job_id`, once a stand-in received it (gevent.Timeout otherwise)."""
        return self._arrived.setdefault(job_id, AsyncResult()).get(timeout=ASK_S)

    def job_ids(self) -> list[str]:
        return [run.job.id for _, run in self.runs]



class Fleet:
    """Bots of one test (own wallet, own lease holder), their stand-ins and their jobs."""

    def __init__(self, services: Services) -> None:
        self.services = dataclasses.replace(services, holder=f"retry-test-{uuid.uuid4().hex}")
        self.db = services.db
        self.inbox = Inbox()
        self.wallet = str(Keypair().pubkey())
        self.bot_ids: list[str] = []
        insert_wallet(self.db, address=self.wallet, agent_public_key=str(Keypair().pubkey()),
                      legacy_envelope="not-a-real-envelope")

    def bot(self, lease_s: float = 300.0, holder: str | None = None) -> str:
        """A bot row leased to `holder` (default: ours) for `lease_s`, with its stand-in."""
        bot_id = str(uuid.uuid4())
        self.bot_ids.append(bot_id)
        insert_bot(self.db, bot_id=bot_id, wallet_address=self.wallet, name="retry tests",
                   market="SOL-PERP", market_index=0, leverage=Decimal(5),
                   max_position_size=Decimal(500), webhook_secret_hash=None,
                   policy_hmac="unused", drift_subaccount_id=len(self.bot_ids))
        assert acquire(self.db, bot_id, holder or self.services.holder, lease_s) is not None
        stand_in_bot(self.services, bot_id, functools.partial(self.inbox.record, bot_id),
                     RunRetry)
        return bot_id

    def job(self, bot_id: str, delay_s: float = 0.0) -> str:
        """A retry job of `bot_id`, due after `delay_s`."""
        return enqueue(self.db, NewJob(bot_id, self.wallet, "SOL-PERP", "long", Decimal("0.1"),
                                       False, "normal", 3), delay_s=delay_s)

    def claimed_by(self, job_id: str, worker: str, ago_s: float) -> None:
        """Mark a job running under `worker`'s claim, taken `ago_s` seconds ago."""
        assert self.db.execute(
            "UPDATE trade_retry_queue SET status = 'running', claimed_by = %s,"
            " claimed_at = now() - make_interval(secs => %s) WHERE id = %s",
            (worker, ago_s, job_id)) == 1

    def scheduler(self) -> pykka.ActorRef[Any]:
        return RetryScheduler.start(services=self.services, tick_s=TICK_S, lease_s=120.0)

    def remove(self) -> None:
        bots = child(self.services, "bots")
        for bot_id in self.bot_ids:
            request(bots, TerminateChild(bot_child_name(bot_id)), ASK_S)
        self.db.execute("DELETE FROM trade_retry_queue WHERE bot_id = ANY(%s)", (self.bot_ids,))
        self.db.execute("DELETE FROM trading_bots WHERE id = ANY(%s)", (self.bot_ids,))
        self.db.execute("DELETE FROM wallets WHERE address = %s", (self.wallet,))


@pytest.fixture
def fleet(services: Services) -> Iterator[Fleet]:
    """A Fleet; its stand-ins, jobs, leases, bots and wallet are removed after the test."""
    made = Fleet(services)
    try:
        yield made
    finally:
        made.remove()


def test_due_job_of_held_bot_reaches_its_bot_once(fleet: Fleet) -> None:
    """The core duty: a due job of a held bot is claimed and told to that bot, and only once."""
    bot = fleet.bot()
    first = fleet.job(bot)
    with running(fleet.scheduler()):
        run = fleet.inbox.wait(first)
        # a job enqueued after the first hand-out proves later scans ran (and skipped `first`)
        probe = fleet.job(bot)
        fleet.inbox.wait(probe)
    assert fleet.inbox.runs == [(bot, run), (bot, fleet.inbox.wait(probe))]
    assert (run.job.id, run.job.bot_id, run.job.status) == (first, bot, JobStatus.RUNNING)
    row = get_job(fleet.db, first)
    assert row is not None
    assert (row.status, row.claimed_by, row.outcome_unknown) == \
        (JobStatus.RUNNING, run.worker, False)


def test_jobs_not_due_or_not_held_stay_queued(fleet: Fleet) -> None:
    """Only due jobs of bots whose live lease we hold, not claimed by a live worker, go out."""
    held = fleet.bot()
    foreign = fleet.bot(holder=f"other-daemon-{uuid.uuid4().hex}")
    lapsed = fleet.bot(lease_s=-60.0)  # our lease, but it ran out
    later = fleet.job(held, delay_s=3600.0)
    theirs = fleet.job(foreign)
    stale = fleet.job(lapsed)
    busy = fleet.job(held)
    fleet.claimed_by(busy, "live-worker", ago_s=0.0)
    probe = fleet.job(held)  # claimed in the same statement that passes over the others
    with running(fleet.scheduler()):
        fleet.inbox.wait(probe)
        assert fleet.inbox.job_ids() == [probe]
    for job_id in (later, theirs, stale):
        row = get_job(fleet.db, job_id)
        assert row is not None
        assert (row.status, row.claimed_by) == (JobStatus.PENDING, None), job_id
    row = get_job(fleet.db, busy)
    assert row is not None
    assert (row.status, row.claimed_by) == (JobStatus.RUNNING, "live-worker")


def test_tick_hands_out_a_job_once_it_is_due(fleet: Fleet) -> None:
    """Nothing wakes the scheduler but its tick: a job enqueued later goes out once due."""
    bot = fleet.bot()
    first = fleet.job(bot)
    with running(fleet.scheduler()):
        fleet.inbox.wait(first)  # the scheduler's first scan is done
        later = fleet.job(bot, delay_s=0.3)  # the scheduler is told nothing of it
        run = fleet.inbox.wait(later)
    row = get_job(fleet.db, later)
    assert row is not None and row.claimed_at is not None
    assert row.claimed_by == run.worker
    assert row.claimed_at >= row.next_retry_at  # by the database's clock: claimed once due
    assert fleet.inbox.job_ids() == [first, later]


def test_job_whose_claim_ran_out_goes_out_again_flagged_unknown(fleet: Fleet) -> None:
    """A job whose claimer died is claimed anew, flagged outcome-unknown for reconciliation."""
    bot = fleet.bot()
    orphan = fleet.job(bot)
    fleet.claimed_by(orphan, "dead-worker", ago_s=600.0)  # beyond the 120 s claim lease
    with running(fleet.scheduler()):
        run = fleet.inbox.wait(orphan)
    assert run.job.outcome_unknown is True
    assert run.job.claimed_by == run.worker != "dead-worker"
    row = get_job(fleet.db, orphan)
    assert row is not None
    assert (row.status, row.claimed_by, row.outcome_unknown) == \
        (JobStatus.RUNNING, run.worker, True)
