"""The processes of one node: which role this one plays, and the workers its intake runs.

`quantumvault run` is a node: with WORKERS=N > 0 this process is the intake (webhook, manual
trades, admin API, /metrics; it commits and announces, executes nothing) and supervises N
worker processes (`run --role worker`), each executing its fair share of the bots; with
WORKERS=0 one process does everything. `--role intake|worker` runs one part alone, e.g. more
workers on another machine against the same DATABASE_URL.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from actors.services import ProcessRole, Services
from observability.node_metrics import WORKER_RESTARTS
from supervision import Backoff, ChildSpec, Intensity
from supervision.process_pool import ProcessPool, ProcessSpec

RESERVED_CONNECTIONS = 10  # superuser slots and operator CLI commands
LISTEN_CONNECTIONS = 4  # each process's LISTEN connections (flags, intake, journal, waiters)
MIN_POOL = 4
STOP_GRACE_EXTRA_S = 15.0  # a worker's drain, plus its tree's stop
# a worker must not inherit the intake's systemd notify socket or watchdog
_NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                  "LISTEN_FDNAMES")


def process_role(option: str, workers: int) -> ProcessRole:
    """This process's role from `run --role` and WORKERS."""
    if option == "all":
        return ProcessRole.INTAKE if workers > 0 else ProcessRole.ALL
    return ProcessRole(option)


def pool_size(configured: int, max_connections: int, workers: int) -> int:
    """Connections per worker so that the intake (its own pool of `configured`) and `workers`
    workers, each with its LISTEN connections, stay under the server's max_connections."""
    left = max_connections - RESERVED_CONNECTIONS - configured - LISTEN_CONNECTIONS
    return max(MIN_POOL, min(configured, left // workers - LISTEN_CONNECTIONS))


def connections_needed(configured: int, workers: int, per_worker: int) -> int:
    """What a node of `workers` workers may open at most (without the reserved slots)."""
    return configured + LISTEN_CONNECTIONS + workers * (per_worker + LISTEN_CONNECTIONS)


def worker_specs(services: Services, entry: Path, workers: int, db_pool: int
                 ) -> list[ProcessSpec]:
    """The command line (`entry`: the program's file) and environment of each worker."""
    state_dir: Path = services.settings.state_dir.resolve()
    base = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    base.update(services.peer_env)
    base["DB_POOL_SIZE"] = str(db_pool)
    return [ProcessSpec(f"worker-{i}", [sys.executable, str(entry), "run", "--role", "worker"],
                        {**base, "STATE_DIR": str(state_dir / "workers" / str(i))})
            for i in range(workers)]


def pool_child(services: Services, specs: list[ProcessSpec],
               on_exit: Callable[[int], None]) -> ChildSpec:
    """The worker pool as the intake's last child (started last, stopped first)."""
    s = services.settings
    grace_s = s.drain_timeout_s + STOP_GRACE_EXTRA_S
    return ChildSpec("workers", ProcessPool, kwargs={
        "specs": specs,
        "intensity": Intensity(s.supervisor_max_restarts, s.supervisor_period_s),
        "backoff": Backoff(base_s=s.supervisor_backoff_base_ms / 1000,
                           cap_s=s.supervisor_backoff_cap_ms / 1000),
        "stop_grace_s": grace_s, "on_exit": on_exit,
        "on_restart": lambda _name: WORKER_RESTARTS.inc()},
        stop_timeout=grace_s + 5.0)
