"""Retry policy: the seed plan's attempts, backoff, cooldown and Swift-to-legacy switch."""

import random

import pytest

from trading.retry_policy import (
    CRITICAL,
    NORMAL,
    after_failure,
    backoff_s,
    priority_for,
    use_swift_on_retry,
)


def test_closes_are_critical_and_opens_normal() -> None:
    assert priority_for(reduce_only=True) is CRITICAL and CRITICAL.max_attempts == 10
    assert priority_for(reduce_only=False) is NORMAL and NORMAL.max_attempts == 5
    assert (CRITICAL.base_delay_s, NORMAL.base_delay_s) == (2.5, 5.0)


@pytest.mark.parametrize(("priority", "attempt", "ceiling"), [
    (CRITICAL, 1, 2.5), (CRITICAL, 2, 5.0), (CRITICAL, 3, 10.0), (CRITICAL, 6, 60.0),
    (CRITICAL, 9, 60.0), (NORMAL, 1, 5.0), (NORMAL, 4, 40.0), (NORMAL, 5, 60.0),
])
def test_backoff_doubles_with_jitter_and_caps_at_60s(priority, attempt, ceiling) -> None:
    rng = random.Random(attempt)
    delays = [backoff_s(priority, attempt, rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 10


def test_retry_until_attempts_are_used_then_cooldown_for_timeouts_only() -> None:
    rng = random.Random(0)
    assert after_failure(NORMAL, 4, 0, timed_out=False, rng=rng).action == "retry"
    assert after_failure(NORMAL, 5, 0, timed_out=False, rng=rng).action == "give_up"
    cooldown = after_failure(NORMAL, 5, 0, timed_out=True, rng=rng)
    assert cooldown.action == "cooldown" and cooldown.delay_s == 120.0
    assert after_failure(NORMAL, 5, 1, timed_out=True, rng=rng).action == "cooldown"
    assert after_failure(NORMAL, 5, 2, timed_out=True, rng=rng).action == "give_up"
    assert after_failure(CRITICAL, 9, 0, timed_out=False, rng=rng).action == "retry"


def test_two_swift_failures_switch_the_job_to_legacy() -> None:
    assert use_swift_on_retry(0, True) and use_swift_on_retry(1, True)
    assert not use_swift_on_retry(2, True)
    assert not use_swift_on_retry(0, False)
