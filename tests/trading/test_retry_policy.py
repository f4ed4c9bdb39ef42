"""Retry policy: the attempts, backoff, cooldown and Swift-to-legacy switch."""

import random

import pytest

from trading.retry_policy import (
    CRITICAL,
    NORMAL,
    RetryRoute,
    after_failure,
    backoff_s,
    priority_for,
    retry_route,
    swift_attempts_allowed,
    swift_retry_delay_s,
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


def test_a_trade_gets_the_first_swift_attempt_and_the_configured_retries() -> None:
    assert swift_attempts_allowed(2) == 3 and swift_attempts_allowed(0) == 1
    assert use_swift_on_retry(0, True, 2) and use_swift_on_retry(2, True, 2)
    assert not use_swift_on_retry(3, True, 2)  # first attempt + 2 retries used up
    assert not use_swift_on_retry(0, False, 2)  # Swift unavailable
    assert not use_swift_on_retry(0, True, 2, retry_with_swift=False)  # retries go legacy
    assert not use_swift_on_retry(1, True, 0)


def _route(fallback: bool, wanted: bool = True, healthy: bool = True, attempts: int = 0,
           retry_with_swift: bool = True) -> RetryRoute:
    return retry_route(fallback_allowed=fallback, swift_wanted=wanted, swift_healthy=healthy,
                       swift_attempts=attempts, max_retries=2, retry_with_swift=retry_with_swift)


def test_with_a_fallback_a_retry_goes_on_chain_once_swift_is_used_up_or_failing() -> None:
    assert _route(True) == RetryRoute(None)  # routed like a new order: Swift first
    assert _route(True, attempts=3) == RetryRoute(False)
    assert _route(True, healthy=False) == RetryRoute(False)
    assert _route(True, retry_with_swift=False) == RetryRoute(False)


def test_without_a_fallback_a_retry_never_goes_on_chain_because_swift_failed() -> None:
    for attempts, retry_with_swift in ((3, True), (9, True), (0, False)):
        assert _route(False, attempts=attempts, retry_with_swift=retry_with_swift) == \
            RetryRoute(None)
    assert _route(False, healthy=False) == RetryRoute(None, wait=True)  # nothing is sent
    # routing that sends any order on-chain (a rollback, the bot's Swift off) still applies
    assert _route(False, wanted=False, healthy=False) == RetryRoute(None)


def test_swift_retries_of_one_order_back_off_briefly_with_jitter() -> None:
    rng = random.Random(4)
    for retry, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        delays = [swift_retry_delay_s(retry, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
