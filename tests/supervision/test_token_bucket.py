"""The one token bucket: never more than the burst plus the refill, a refusal spends nothing,
and the wait it quotes is the wait that works."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervision.token_bucket import KeyedTokenBucket, TokenBucket


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@given(rate=st.floats(0.5, 100), burst=st.integers(1, 60),
       steps=st.lists(st.tuples(st.floats(0, 2), st.integers(1, 80)), max_size=60))
def test_spent_tokens_never_exceed_the_burst_plus_the_refill(
        rate: float, burst: int, steps: list[tuple[float, int]]) -> None:
    clock = Clock()
    bucket = TokenBucket(rate, burst, clock)
    start, spent, largest = clock.now, 0.0, 0.0
    for advance, cost in steps:
        clock.now += advance
        wait = bucket.take(cost)
        assert wait >= 0
        if wait == 0:
            spent += cost
            largest = max(largest, cost)
        else:  # the quoted wait is enough
            clock.now += wait
            assert bucket.wait_s(cost) == pytest.approx(0, abs=1e-6)
    # a cost above the burst is admitted from a full bucket and leaves a debt of at most itself
    assert spent <= burst + rate * (clock.now - start) + max(0.0, largest - burst) + 1e-6


def test_a_refused_take_spends_nothing_and_the_quoted_wait_works() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=4, burst=2, clock=clock)
    assert bucket.take() == 0.0 and bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.25)
    for _ in range(50):
        assert bucket.take() > 0
    clock.now += 0.25
    assert bucket.take() == 0.0


def test_a_batch_above_the_burst_waits_for_a_full_bucket_then_leaves_a_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=10, burst=5, clock=clock)
    assert bucket.take(3) == 0.0
    assert bucket.take(8) == pytest.approx(0.3)  # needs the full 5
    clock.now += 0.3
    assert bucket.take(8) == 0.0
    assert bucket.wait_s() == pytest.approx(0.4)  # 3 tokens of debt, then 1


def test_each_key_has_its_own_bucket_and_the_table_stays_bounded() -> None:
    clock = Clock()
    buckets = KeyedTokenBucket(rate_per_s=2, burst=3, clock=clock, max_keys=2)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # another key, another bucket
    assert buckets.wait_s("a") == pytest.approx(0.5)  # and "a" is the most recent again
    assert buckets.take("c") == 0.0  # evicts "b", the least recently used
    assert buckets.wait_s("b") == 0.0 and buckets.wait_s("a") > 0


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 5), (1, 0)])
def test_limits_that_admit_nothing_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)
