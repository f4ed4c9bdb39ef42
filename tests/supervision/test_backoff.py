"""Backoff arithmetic: doubling, cap, jitter range."""

import random

from supervision import Backoff


def test_delay_doubles_and_caps_without_jitter() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0, jitter=0.0)
    rng = random.Random(1)
    assert [backoff.delay(n, rng) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_jitter_stays_within_its_band() -> None:
    backoff = Backoff(base_s=1.0, cap_s=100.0, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay(3, rng) for _ in range(500)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert max(delays) - min(delays) > 1.0  # it really varies


def test_zero_base_means_immediate() -> None:
    assert Backoff(base_s=0.0).delay(5, random.Random(0)) == 0.0
