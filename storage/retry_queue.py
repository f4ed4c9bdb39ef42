"""The persistent trade retry queue: enqueue, claim with SKIP LOCKED and a lease, settle.

A claim moves due jobs to `running` in one statement over `SELECT ... FOR UPDATE SKIP LOCKED`,
so two schedulers on one database never take the same job. A `running` job whose lease ran out
(its scheduler died) is claimed again, flagged `outcome_unknown`: its last attempt may have
reached the venue, so it must be reconciled before anything is sent again.

The queue's audit columns are filled from the trades themselves: `swift_order_id` is the last
Swift order of the job (the original trade's at enqueue, each Swift attempt's after it), and a
close carries `entry_price`, the average entry price of the position it closes (from the
original trade's position before it was sent; opens have none).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from psycopg2.extras import Json

from security import row_macs
from security.server_key import ServerKeyRing
from storage.bot_leases import LEASED_BY, LeaseLost
from storage.database import Database
from storage.notify import Listener

SETTLED_CHANNEL = "retry_settled"


class JobStatus(StrEnum):
    """trade_retry_queue.status: where a retry job is in its life."""

    PENDING = "pending"  # waiting until next_retry_at
    RUNNING = "running"  # claimed by a worker (under a lease)
    DONE = "done"  # its trade happened
    FAILED = "failed"  # given up: no more attempts


@dataclass(frozen=True)
class NewJob:
    """A trade to try again."""

    bot_id: str
    wallet_address: str
    market: str
    side: str
    size: Decimal
    reduce_only: bool
    priority: str
    max_attempts: int
    signal_id: str | None = None
    sub_account_id: int = 0
    original_trade_id: str | None = None
    entry_price: Decimal | None = None
    original_execution_method: str = "legacy"
    is_remainder: bool = False
    last_error: str | None = None
    payload: dict[str, Any] | None = None
    outcome_unknown: bool = False  # an earlier attempt may have traded: reconcile first
    position_before: int | None = None  # the position that attempt started from
    swift_attempts: int = 0  # Swift orders the trade already sent (retries included)


@dataclass(frozen=True)
class RetryJob:
    """One trade_retry_queue row, as the scheduler claims it and the bot's actor runs it.

    Field names are the columns' (security.row_macs.retry_fields reads them by name)."""

    id: str
    bot_id: str
    signal_id: str | None
    wallet_address: str
    market: str
    side: str
    size: Decimal  # in the base asset (not 1e9 units)
    sub_account_id: int
    reduce_only: bool
    priority: str  # a trading.retry_policy.PRIORITIES name
    status: JobStatus
    attempts: int
    max_attempts: int
    cooldown_retries: int
    next_retry_at: datetime
    last_error: str | None
    original_trade_id: str | None
    webhook_payload: dict[str, Any] | None
    entry_price: Decimal | None
    swift_order_id: str | None
    original_execution_method: str | None
    swift_attempts: int
    last_swift_error: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    outcome_unknown: bool
    pending_order_ref: str | None
    is_remainder: bool
    position_before_base: int | None  # base units (1e9) when its last attempt started
    job_mac: str | None

    @property
    def flatten(self) -> dict[str, Any] | None:
        """The flatten ticket the job carries (stop_id, scope), if a flatten queued it."""
        return (self.webhook_payload or {}).get("flatten") or None


_COLUMNS = tuple(f.name for f in fields(RetryJob))


def _job(row: dict[str, Any]) -> RetryJob:
    """Row dict to RetryJob."""
    values = {name: row[name] for name in _COLUMNS}
    position = values["position_before_base"]
    return RetryJob(**values | {
        "status": JobStatus(values["status"]),
        "swift_attempts": values["swift_attempts"] or 0,
        "position_before_base": None if position is None else int(position)})


def enqueue(db: Database, job: NewJob, delay_s: float = 0.0,
            ring: ServerKeyRing | None = None, holder: str | None = None,
            epoch: int | None = None) -> str:
    """Add a job, due after `delay_s`; returns its id (one statement: never half a job).

    Unless the job says otherwise, its swift_order_id and (for a close) entry_price come from
    its original trade. With `ring` (every daemon path) the job is MAC'd (security.row_macs);
    the retry worker refuses a job without a valid MAC. With `holder`, only while that process
    holds the bot's lease at `epoch` (LeaseLost otherwise): a worker that lost the bot mid-order
    queues nothing beside the new holder's reconciliation."""
    job_id = str(uuid.uuid4())
    mac = None if ring is None else row_macs.sign(ring, row_macs.RETRY, row_macs.retry_fields({
        "id": job_id, "bot_id": job.bot_id, "wallet_address": job.wallet_address,
        "market": job.market, "side": job.side, "size": job.size,
        "reduce_only": job.reduce_only, "sub_account_id": job.sub_account_id,
        "signal_id": job.signal_id, "webhook_payload": job.payload}))
    fence = "" if holder is None else (
        " WHERE EXISTS (SELECT 1 FROM bot_leases l WHERE l.bot_id = %s AND l.holder = %s"
        " AND l.expires_at > now() AND (%s::bigint IS NULL OR l.epoch = %s) FOR SHARE)")
    row = db.fetchone(
        "WITH orig AS (SELECT swift_order_id, CASE WHEN %s AND position_before_base <> 0 THEN"
        "   round(abs(entry_quote_before) * 1000 / abs(position_before_base), 6) END AS entry"
        "  FROM bot_trades WHERE id = %s)"
        f" INSERT INTO trade_retry_queue (id, {'job_mac' if mac else 'last_swift_error'},"
        " bot_id, wallet_address, market, side, size, reduce_only,"
        " priority, max_attempts, signal_id, sub_account_id, original_trade_id, entry_price,"
        " original_execution_method, is_remainder, last_error, webhook_payload, next_retry_at,"
        " outcome_unknown, position_before_base, swift_attempts, swift_order_id)"
        " SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " COALESCE(%s, (SELECT entry FROM orig)), %s, %s, %s, %s,"
        " now() + make_interval(secs => %s), %s, %s, %s, (SELECT swift_order_id FROM orig)"
        f"{fence} RETURNING id",
        (job.reduce_only, job.original_trade_id, job_id, mac,
         job.bot_id, job.wallet_address, job.market, job.side, job.size, job.reduce_only,
         job.priority, job.max_attempts, job.signal_id, job.sub_account_id,
         job.original_trade_id, job.entry_price, job.original_execution_method,
         job.is_remainder, job.last_error, Json(job.payload) if job.payload else None, delay_s,
         job.outcome_unknown, job.position_before, job.swift_attempts,
         *(() if holder is None else (job.bot_id, holder, epoch, epoch))))
    if row is None:
        raise LeaseLost(f"this process no longer holds bot {job.bot_id}")
    return row["id"]


def claim_due(db: Database, worker: str, limit: int, lease_s: float,
              holder: str | None = None) -> list[RetryJob]:
    """Claim up to `limit` due jobs for `worker` (critical first); expired leases count as due.
    With `holder`, only jobs of bots whose lease that daemon holds (storage.bot_leases)."""
    fence = "" if holder is None else f" AND {LEASED_BY.format(bot='j.bot_id')}"
    rows = db.fetchall(
        "UPDATE trade_retry_queue q SET status = 'running', claimed_by = %(worker)s,"
        " claimed_at = now(), updated_at = now(),"
        " outcome_unknown = q.outcome_unknown OR q.status = 'running'"
        " WHERE q.id IN (SELECT id FROM trade_retry_queue j"
        "  WHERE ((status = 'pending' AND next_retry_at <= now())"
        "     OR (status = 'running' AND claimed_at < now() - make_interval(secs => %(lease)s)))"
        f"  {fence}"
        "  ORDER BY (priority = 'critical') DESC, next_retry_at, id"
        "  LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
        f" RETURNING {', '.join('q.' + c for c in _COLUMNS)}",
        {"worker": worker, "lease": lease_s, "limit": limit, "holder": holder})
    return sorted((_job(r) for r in rows),
                  key=lambda j: (j.priority != "critical", j.next_retry_at, j.id))


def get_job(db: Database, job_id: str) -> RetryJob | None:
    """One job by id."""
    row = db.fetchone(f"SELECT {', '.join(_COLUMNS)} FROM trade_retry_queue WHERE id = %s",
                      (job_id,))
    return _job(row) if row else None


def mark_sending(db: Database, job_id: str, worker: str, claimed_at: datetime | None,
                 order_ref: str,
                 swift: bool, position_before: int | None = None) -> bool:
    """Record, before sending, that an attempt is going out (its fate is unknown until settled),
    with the position it starts from, so a later claim can tell whether it traded.

    Only the claim that is still current may send (`claimed_at` must match: a job reclaimed
    after its lease ran out is not sent by its old holder), and the lease restarts now, so it
    is counted from the send.
    """
    return db.execute(
        "UPDATE trade_retry_queue SET outcome_unknown = true, pending_order_ref = %s,"
        " swift_attempts = swift_attempts + %s, swift_order_id = CASE WHEN %s THEN %s"
        " ELSE swift_order_id END, position_before_base = %s, claimed_at = now(),"
        " updated_at = now()"
        " WHERE id = %s AND claimed_by = %s AND claimed_at = %s AND status = 'running'",
        (order_ref, 1 if swift else 0, swift, order_ref, position_before, job_id,
         worker, claimed_at)) == 1


def settle_unknown(db: Database, job_id: str, worker: str, delay_s: float, error: str,
                   count_attempt: bool = True) -> bool:
    """The attempt's fate is still unknown: due again later, reconciled before any resend
    (waiting for an open auction is not a failed attempt: `count_attempt=False`)."""
    return _settled(db, job_id, db.execute(
        "UPDATE trade_retry_queue SET status = 'pending', outcome_unknown = true,"
        " attempts = attempts + %s, last_error = %s, claimed_by = NULL,"
        " next_retry_at = now() + make_interval(secs => %s), updated_at = now()"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (1 if count_attempt else 0, error, delay_s, job_id, worker)))


def count_swift_attempt(db: Database, job_id: str, swift_error: str | None,
                        attempts: int = 1) -> None:
    """An attempt sent `attempts` Swift orders (and failed on Swift when `swift_error` is
    given); the job's swift_order_id becomes the last of them (the bot's latest Swift trade:
    a bot's orders, retries included, run one at a time on its own actor)."""
    db.execute("UPDATE trade_retry_queue q SET swift_attempts = q.swift_attempts + %s,"
               " last_swift_error = COALESCE(%s, q.last_swift_error),"
               " swift_order_id = COALESCE((SELECT t.swift_order_id FROM bot_trades t"
               "  WHERE t.trading_bot_id = q.bot_id AND t.swift_order_id IS NOT NULL"
               "  ORDER BY t.created_at DESC LIMIT 1), q.swift_order_id)"
               " WHERE q.id = %s",
               (attempts, swift_error, job_id))


def settle_done(db: Database, job_id: str, worker: str) -> bool:
    """The job's trade happened (now or, as reconciliation found, earlier)."""
    return _settled(db, job_id, db.execute(
        "UPDATE trade_retry_queue SET status = 'done', outcome_unknown = false,"
        " updated_at = now() WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (job_id, worker)))


def settle_retry(db: Database, job_id: str, worker: str, delay_s: float, error: str,
                 swift_error: str | None, cooldown: bool) -> bool:
    """The attempt failed for sure: due again after `delay_s` (a cooldown starts a new round)."""
    return _settled(db, job_id, db.execute(
        "UPDATE trade_retry_queue SET status = 'pending', outcome_unknown = false,"
        " attempts = CASE WHEN %(cooldown)s THEN 0 ELSE attempts + 1 END,"
        " cooldown_retries = cooldown_retries + CASE WHEN %(cooldown)s THEN 1 ELSE 0 END,"
        " last_error = %(error)s, last_swift_error = COALESCE(%(swift)s, last_swift_error),"
        " next_retry_at = now() + make_interval(secs => %(delay)s), claimed_by = NULL,"
        " updated_at = now() WHERE id = %(id)s AND claimed_by = %(worker)s"
        " AND status = 'running'",
        {"cooldown": cooldown, "error": error, "swift": swift_error, "delay": delay_s,
         "id": job_id, "worker": worker}))


def settle_failed(db: Database, job_id: str, worker: str, error: str) -> bool:
    """The job is given up: no more attempts."""
    return _settled(db, job_id, db.execute(
        "UPDATE trade_retry_queue SET status = 'failed', outcome_unknown = false,"
        " attempts = attempts + 1, last_error = %s, updated_at = now()"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (error, job_id, worker)))


def release_claim(db: Database, job_id: str, worker: str, delay_s: float = 0.0,
                  reason: str | None = None) -> bool:
    """Hand a claimed job back untouched, due after `delay_s` (the daemon stops before running
    it; or it may not sign yet, `reason`): no attempt counted, an unknown outcome kept."""
    return db.execute(
        "UPDATE trade_retry_queue SET status = 'pending', claimed_by = NULL,"
        " next_retry_at = now() + make_interval(secs => %s),"
        " last_error = COALESCE(%s, last_error), updated_at = now()"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (delay_s, reason, job_id, worker)) == 1


def replace_job_mac(db: Database, job: RetryJob, new_mac: str) -> bool:
    """Rotation: compare-and-swap a verified job MAC to the current key's."""
    return db.execute("UPDATE trade_retry_queue SET job_mac = %s WHERE id = %s"
                      " AND job_mac IS NOT DISTINCT FROM %s AND size = %s AND side = %s"
                      " AND bot_id = %s", (new_mac, job.id, job.job_mac, job.size,
                                           job.side, job.bot_id)) == 1


def depth_by_priority(db: Database) -> dict[str, int]:
    """Jobs waiting or running, per priority (for the queue-depth metric)."""
    rows = db.fetchall(
        "SELECT priority, count(*) AS n FROM trade_retry_queue"
        " WHERE status IN ('pending', 'running') GROUP BY priority")
    return {"critical": 0, "normal": 0} | {r["priority"]: r["n"] for r in rows}


def _settled(db: Database, job_id: str, rows: int) -> bool:
    """Tell listeners a job was settled; True when this worker's claim settled it."""
    if rows == 1:
        db.execute("SELECT pg_notify(%s, %s)", (SETTLED_CHANNEL, job_id))
    return rows == 1


class JobWaiter:
    """Waits for a retry job to reach a status (tests, operators), told by NOTIFY."""

    def __init__(self, dsn: str) -> None:
        self._listener = Listener(dsn, SETTLED_CHANNEL)

    def wait(self, job_id: str, statuses: tuple[str, ...], timeout_s: float,
             until: Any = None) -> dict[str, Any]:
        """Block until the job's status is one of `statuses` (and `until(row)`, if given)."""

        def check(cur: Any) -> dict[str, Any] | None:
            cur.execute("SELECT * FROM trade_retry_queue WHERE id = %s", (job_id,))
            row = cur.fetchone()
            if row is None or row["status"] not in statuses:
                return None
            return dict(row) if until is None or until(dict(row)) else None

        return self._listener.wait_until(check, timeout_s, f"retry job {job_id} {statuses}")

    def close(self) -> None:
        """Close the listening connection."""
        self._listener.close()
