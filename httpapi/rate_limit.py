"""A token bucket per key (a bot id): `burst` requests at once, then `rate_per_s` sustained.

The intake keys it by authenticated bot only, so the number of buckets is bounded by the number
of bots; unauthenticated callers never create one. The admin listener keys failed
authentications by client address: there `max_keys` bounds the table (the least recently used
bucket is dropped first, which at worst forgives an old offender). Requests run on greenlets of
one thread and `take` does not yield, so no lock is needed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KeyedTokenBucket:
    """`take(key)` spends one token of that key's bucket, or says how long until one is due."""

    def __init__(self, rate_per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic, max_keys: int | None = None) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        if max_keys is not None and max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def burst(self) -> int:
        """Requests allowed at once."""
        return int(self._burst)

    @property
    def rate_per_s(self) -> float:
        """Requests allowed per second, sustained."""
        return self._rate

    def _bucket(self, key: str) -> _Bucket:
        """The key's bucket refilled to now (created full, evicting the oldest when bounded)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            if self._max_keys is not None and len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str) -> float:
        """0.0 when the request may proceed (a token is spent); otherwise the seconds until
        the next token (nothing is spent)."""
        bucket = self._bucket(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def wait_s(self, key: str) -> float:
        """Seconds until the key has a token (0.0: it has one now); spends nothing."""
        if key not in self._buckets:
            return 0.0
        bucket = self._bucket(key)
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self._rate
