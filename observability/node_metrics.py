"""Metrics of a multi-process node: the bots each worker holds, its lease churn, its restarts.

The `worker` label is the worker's holder id (one per worker process, bounded by WORKERS).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# Set by each worker under its own label only: livesum keeps one series per worker (no pid
# label), `sum(worker_bots_held)` is the node's bots, and a dead worker's series goes with it.
WORKER_BOTS_HELD = Gauge("worker_bots_held", "Bots whose lease a worker process holds, by worker",
                         ["worker"], multiprocess_mode="livesum")
BOT_LEASE_RENEWALS = Counter("bot_lease_renewals", "Bot leases a worker renewed, by worker",
                             ["worker"])
BOT_LEASE_LOSSES = Counter("bot_lease_losses", "Bot leases a worker lost (expired or taken by"
                           " another holder before it renewed them), by worker", ["worker"])
WORKER_RESTARTS = Counter("worker_restarts",
                          "Worker processes the intake started again after they exited")
