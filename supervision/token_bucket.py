"""Token buckets: a burst at once, then a sustained rate. One formula for every rate limit in
the tree: the gateway's Swift budget, the webhook's per-bot limit, the admin listener's failed
logins and the sandbox's RPC plan.

`take` and `wait_s` never block and never yield, so callers on greenlets of one thread (actors,
WSGI handlers) need no lock; the sandbox's threaded server holds its own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# a shortfall this small is the clock's float arithmetic, not a missing token: after the quoted
# wait the bucket pays
_ROUNDING = 1e-9


class TokenBucket:
    """At most `burst` tokens banked, refilled at `rate_per_s`; a call costs tokens or says
    how long until it could pay."""

    def __init__(self, rate_per_s: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._rate = float(rate_per_s)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = self._burst
        self._at = clock()

    @property
    def burst(self) -> int:
        """Tokens allowed at once."""
        return int(self._burst)

    @property
    def rate_per_s(self) -> float:
        """Tokens added per second, sustained."""
        return self._rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def wait_s(self, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens could be paid (0.0: now); spends nothing. A cost above
        the burst needs a full bucket."""
        self._refill()
        short = min(float(cost), self._burst) - self._tokens
        return 0.0 if short <= _ROUNDING else short / self._rate

    def take(self, cost: float = 1.0) -> float:
        """0.0 when `cost` tokens were spent; otherwise the seconds until they could be, and
        nothing is spent. A cost above the burst is paid from a full bucket and leaves a debt,
        so a large batch is admitted once in a while, not starved."""
        wait = self.wait_s(cost)
        if wait == 0.0:
            self._tokens -= cost
        return wait


class KeyedTokenBucket:
    """A bucket per key (a bot id, a client address), created full on first use; `max_keys`
    bounds the table by dropping the least recently used bucket (at worst forgiving an old
    offender)."""

    def __init__(self, rate_per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic, max_keys: int | None = None) -> None:
        if max_keys is not None and max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._template = TokenBucket(rate_per_s, burst, clock)  # validates the limits once
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def burst(self) -> int:
        """Requests allowed at once, per key."""
        return self._template.burst

    @property
    def rate_per_s(self) -> float:
        """Requests allowed per second, per key, sustained."""
        return self._template.rate_per_s

    def take(self, key: str) -> float:
        """0.0 when the key's request may proceed (a token is spent); otherwise the seconds
        until its next token (nothing is spent)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate_per_s, self.burst, self._clock)
            if self._max_keys is not None and len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take()

    def wait_s(self, key: str) -> float:
        """Seconds until the key has a token (0.0: it has one now); spends nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        self._buckets.move_to_end(key)
        return bucket.wait_s()
