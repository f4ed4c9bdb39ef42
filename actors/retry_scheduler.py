"""RetryScheduler: owns the persistent retry queue's clock; claims due jobs, hands them to bots.

Jobs are claimed with `SELECT ... FOR UPDATE SKIP LOCKED` and a lease (storage.retry_queue),
so two daemons on one database never run the same job, and a job whose daemon died is claimed
again once its lease ran out, flagged outcome-unknown. Each claimed job goes to its bot's
actor, so a retry takes its place in that bot's order like any signal; the bot runs it and
settles it. The lease must outlast a Swift auction and a blockhash's validity (about a minute),
so that a reclaimed job's last attempt can no longer trade when it is reconciled.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from actors.dispatch import bot_ref
from actors.messages import RunRetry
from actors.services import Services
from observability.trading_metrics import RETRY_QUEUE_DEPTH
from storage.retry_queue import RetryJob, claim_due, depth_by_priority, release_claim
from supervision import Outcome, SupervisedActor

log = logging.getLogger(__name__)

HANDBACK_DELAY_S = 1.0  # a job its bot could not take is due again this much later


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _Claimed:
    outcome: Outcome


class RetryScheduler(SupervisedActor):
    """Claims due retry jobs on a timer (off the mailbox) and wakes each job's bot."""

    def __init__(self, services: Services, tick_s: float = 1.0, lease_s: float = 120.0,
                 batch: int = 50) -> None:
        super().__init__()
        self._services = services
        self._tick_s = tick_s
        self._lease_s = lease_s
        self._batch = batch
        self._worker = f"retry-{uuid.uuid4().hex[:16]}"
        self._claiming = False

    def on_start(self) -> None:
        self.actor_ref.tell(_Tick())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            if not self._claiming and not self._services.stopping.is_set():
                self._claiming = True
                self.run_in_background(self._claim, _Claimed)
            self.send_later(self._tick_s, _Tick())
            return None
        if isinstance(message, _Claimed):
            return self._dispatch(message.outcome)
        return super().on_receive(message)

    def _claim(self) -> list[RetryJob]:
        db = self._services.db
        jobs = claim_due(db, self._worker, self._batch, self._lease_s,
                         holder=self._services.holder)
        try:
            for priority, depth in depth_by_priority(db).items():
                RETRY_QUEUE_DEPTH.labels(priority=priority).set(depth)
        except Exception as exc:  # a gauge is not worth the jobs just claimed
            log.warning("retry queue depth not read: %s", type(exc).__name__)
        return jobs

    def _dispatch(self, claimed: Outcome) -> None:
        self._claiming = False
        if claimed.error is not None:
            log.error("could not claim retry jobs: %s", type(claimed.error).__name__)
            return
        for job in claimed.value:
            try:
                bot_ref(self._services, job.bot_id).tell(RunRetry(job, self._worker))
            except Exception as exc:  # nothing was sent: back in the queue, due in a second
                log.error("could not hand retry job to its bot: %s", type(exc).__name__,
                          extra={"bot_id": job.bot_id})
                try:
                    release_claim(self._services.db, job.id, self._worker, HANDBACK_DELAY_S)
                except Exception:  # the claim's lease brings it back
                    log.warning("retry job not handed back", extra={"bot_id": job.bot_id})
