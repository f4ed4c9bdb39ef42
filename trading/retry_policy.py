"""When a failed trade is tried again, how it is tried, and when the bot gives up on it.

The seed plan's rules: closes are critical (10 attempts, 2.5 s base), opens normal (5 attempts,
5 s base); exponential backoff with jitter capped at 60 s; once the attempts are used up a
timeout earns a cooldown re-queue (2 minutes, at most 2 times), anything else is final and
pauses the bot; after 2 Swift failures a job goes legacy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_BACKOFF_S = 60.0
COOLDOWN_S = 120.0
MAX_COOLDOWN_RETRIES = 2
SWIFT_ATTEMPTS_BEFORE_LEGACY = 2


@dataclass(frozen=True)
class Priority:
    """Attempts and base delay of one priority class."""

    name: str
    max_attempts: int
    base_delay_s: float


CRITICAL = Priority("critical", 10, 2.5)
NORMAL = Priority("normal", 5, 5.0)
PRIORITIES = {p.name: p for p in (CRITICAL, NORMAL)}


def priority_for(reduce_only: bool) -> Priority:
    """Closes (reduce-only) are critical: an open position left behind is the costly failure."""
    return CRITICAL if reduce_only else NORMAL


def backoff_s(priority: Priority, attempts: int, rng: random.Random) -> float:
    """Delay before the next try after `attempts` failed ones: base·2^(n-1), jittered, capped."""
    raw = min(MAX_BACKOFF_S, priority.base_delay_s * 2 ** max(0, attempts - 1))
    return raw * (0.5 + 0.5 * rng.random())


@dataclass(frozen=True)
class NextStep:
    """What to do with a job after a failed attempt."""

    action: str  # "retry" | "cooldown" | "give_up"
    delay_s: float = 0.0


def after_failure(priority: Priority, attempts: int, cooldown_retries: int, timed_out: bool,
                  rng: random.Random) -> NextStep:
    """The step after the `attempts`-th failure (attempts counts the one just failed)."""
    if attempts < priority.max_attempts:
        return NextStep("retry", backoff_s(priority, attempts, rng))
    if timed_out and cooldown_retries < MAX_COOLDOWN_RETRIES:
        return NextStep("cooldown", COOLDOWN_S)
    return NextStep("give_up")


def use_swift_on_retry(swift_attempts: int, swift_available: bool) -> bool:
    """Swift again only while it is available and has failed fewer than 2 times for this job."""
    return swift_available and swift_attempts < SWIFT_ATTEMPTS_BEFORE_LEGACY
