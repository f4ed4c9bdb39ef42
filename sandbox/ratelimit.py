"""The RPC provider's rate limit: a token bucket per JSON-RPC path (primary, backup).

A bucket holds at most ``limit`` tokens (the burst) and refills at ``limit`` tokens per second
(the sustained rate), like a provider plan of "N requests per second". Every JSON-RPC call
costs one token, so a batch of k calls costs k. A request the bucket cannot pay for is refused
whole (HTTP 429, nothing executed, nothing taken from the bucket); a batch larger than the
burst is admitted only on a full bucket and leaves the bucket in debt, so it is not starved
forever and still costs what it carried.

Time is ``time.monotonic`` (injectable for tests): the limit is about wall-clock request rate,
independent of the simulated slot clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from supervision.token_bucket import TokenBucket


class RpcRateLimiter:
    """One bucket per RPC path; the limit is read on every request so a runtime change to the
    ``rpc_rps_limit`` fault takes effect at once (with a fresh, full bucket)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def admit(self, path: str, limit: int, cost: int = 1) -> float:
        """0.0 if ``cost`` calls on ``path`` may run now (``limit`` 0 = unlimited), else the
        seconds until they could."""
        if limit <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(path)
            if bucket is None or bucket.rate_per_s != limit:
                bucket = TokenBucket(limit, max(1, limit), self._clock)  # a burst of one at least
                self._buckets[path] = bucket
            return bucket.take(cost)
