"""Exponential backoff with jitter between restarts, so a crash loop does not spin the CPU."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before the n-th consecutive restart of a child; reset once it ran `stable_s`."""

    base_s: float = 0.1
    cap_s: float = 30.0
    jitter: float = 0.5
    stable_s: float = 30.0

    def delay(self, consecutive: int, rng: random.Random) -> float:
        """Seconds to wait before restart number `consecutive` (1-based) of a burst.

        The raw delay doubles from `base_s` up to `cap_s`; jitter then draws uniformly from
        [raw * (1 - jitter), raw] so that children crashing together do not restart in lockstep.
        """
        if consecutive < 1 or self.base_s <= 0:
            return 0.0
        raw = min(self.cap_s, self.base_s * 2 ** (consecutive - 1))
        return raw * (1.0 - self.jitter * rng.random())
