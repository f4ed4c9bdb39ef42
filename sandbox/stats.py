"""Counters the sandbox exposes at GET /sandbox/stats for tests and benchmarks."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

RPC_LOG_MAX = 100_000


class Stats:
    """Global and per-authority counters; ``snapshot`` returns plain JSON-able dicts."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = defaultdict(int)
        self.by_authority: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.by_instruction: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.rpc_calls: dict[str, int] = defaultdict(int)
        self.rpc_log: deque[tuple[float, str]] = deque(maxlen=RPC_LOG_MAX)  # (wall time, method)
        self._changed = threading.Condition()

    def incr(self, name: str, authority: str | None = None, n: int = 1) -> None:
        """Count ``name`` globally and, when given, for one authority (base58)."""
        with self._changed:
            self.totals[name] += n
            if authority:
                self.by_authority[authority][name] += n
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds, woken by each count (in-process tests)."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def incr_rpc(self, method: str, known: bool) -> None:
        """Count one JSON-RPC call: ``totals["rpc_<method>"]`` and ``rpc_calls[method]``
        (unknown methods are counted in ``rpc_calls`` as "unknown", keeping it bounded)."""
        with self._changed:
            self.totals[f"rpc_{method}"] += 1
            self.rpc_calls[method if known else "unknown"] += 1
            self.rpc_log.append((time.time(), method if known else "unknown"))
            self._changed.notify_all()

    def incr_ix(self, ix_name: str, outcome: str) -> None:
        """Count one instruction by outcome ("received", "landed", "failed")."""
        self.by_instruction[ix_name][outcome] += 1

    def rpc_calls_since(self, since: float) -> list[dict[str, Any]]:
        """The JSON-RPC calls that arrived after wall time `since`, oldest first."""
        with self._changed:
            return [{"at": at, "method": m} for at, m in self.rpc_log if at > since]

    def snapshot(self) -> dict[str, Any]:
        """A copy safe to serialize."""
        return {
            "totals": dict(self.totals),
            "by_authority": {k: dict(v) for k, v in self.by_authority.items()},
            "by_instruction": {k: dict(v) for k, v in self.by_instruction.items()},
            "rpc_calls": dict(self.rpc_calls),
        }
