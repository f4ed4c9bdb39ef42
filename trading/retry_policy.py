"""When a failed trade is tried again, how it is tried, and when the bot gives up on it.

The rules: closes are critical (10 attempts, 2.5 s base), opens normal (5 attempts,
5 s base); exponential backoff with jitter capped at 60 s; once the attempts are used up a
timeout earns a cooldown re-queue (2 minutes, at most 2 times), anything else is final and
pauses the bot.

Swift: a definite refusal that is retryable (429, 503, slot too old: nothing was published) is
signed again with a fresh slot and sent to Swift again after a short backoff, up to
SWIFT_MAX_RETRIES_BEFORE_FALLBACK retries; then the order goes legacy. A trade's Swift attempts
are counted across the order and its retry jobs, so a job whose trade used them up goes legacy.

Without a fallback (the bot's, or SWIFT_FALLBACK_ENABLED off) a retry job never goes on-chain
because Swift failed it, closes included: each attempt is routed like a new order (so a Swift
rollback, the bot's Swift off or the other routing reasons still send it on-chain), and while
Swift is marked unhealthy it waits (a failed attempt, nothing sent); once its attempts are used
up it is failed and the bot paused, as after any other failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from supervision.backoff import Backoff

MAX_BACKOFF_S = 60.0
COOLDOWN_S = 120.0
MAX_COOLDOWN_RETRIES = 2
# between Swift attempts of one order: the retry must still fit the order's execution budget
# (a 429 from the edge says Retry-After: 1)
SWIFT_RETRY_BACKOFF = Backoff(base_s=0.5, cap_s=4.0, jitter=0.5)


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
    return Backoff(base_s=priority.base_delay_s, cap_s=MAX_BACKOFF_S).delay(max(1, attempts), rng)


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


def swift_attempts_allowed(max_retries: int) -> int:
    """Swift attempts one trade may make: the first one and SWIFT_MAX_RETRIES_BEFORE_FALLBACK
    retries."""
    return 1 + max(0, max_retries)


def swift_retry_delay_s(retry: int, rng: random.Random) -> float:
    """Delay before Swift retry number `retry` (1-based) of one order."""
    return SWIFT_RETRY_BACKOFF.delay(retry, rng)


def use_swift_on_retry(swift_attempts: int, swift_available: bool, max_retries: int,
                       retry_with_swift: bool = True) -> bool:
    """Swift again for a retry job only while Swift is available, retries may use it
    (SWIFT_RETRY_WITH_SWIFT) and the trade has Swift attempts left."""
    return (swift_available and retry_with_swift
            and swift_attempts < swift_attempts_allowed(max_retries))


@dataclass(frozen=True)
class RetryRoute:
    """How one retry attempt is sent: `use_swift` for the order (None: routed like a new order,
    False: on-chain at once), or `wait`: nothing is sent, a failed attempt."""

    use_swift: bool | None
    wait: bool = False


def retry_route(*, fallback_allowed: bool, swift_wanted: bool, swift_healthy: bool,
                swift_attempts: int, max_retries: int, retry_with_swift: bool) -> RetryRoute:
    """The route of a retry attempt; `swift_wanted` says whether routing would pick Swift were
    it healthy. With no fallback allowed, going on-chain because Swift failed would be the very
    fallback the bot or the operator turned off."""
    if not fallback_allowed:
        return RetryRoute(None, wait=swift_wanted and not swift_healthy)
    swift = use_swift_on_retry(swift_attempts, swift_healthy, max_retries, retry_with_swift)
    return RetryRoute(None if swift else False)
