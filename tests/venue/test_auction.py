"""Auction parameters: direction invariants on random inputs, and the documented defaults."""

from __future__ import annotations

import random

import pytest

from venue.auction import LONG, SHORT, AuctionConfig, auction_params


def test_defaults_are_oracle_minus_plus_10_bps_over_50_slots() -> None:
    oracle = 150_000_000
    long = auction_params(LONG, oracle, AuctionConfig())
    short = auction_params(SHORT, oracle, AuctionConfig())
    assert (long.start_price, long.end_price, long.duration) == (149_850_000, 150_150_000, 50)
    assert (short.start_price, short.end_price, short.duration) == (150_150_000, 149_850_000, 50)


def test_direction_invariants_hold_for_random_configs() -> None:
    rng = random.Random(42)
    for _ in range(2000):
        a, b = sorted((rng.randint(-500, 500), rng.randint(-500, 500)))
        cfg = AuctionConfig(start_bps=a, end_bps=b, duration_slots=rng.randint(1, 255))
        oracle = rng.randint(1, 10**12)
        long = auction_params(LONG, oracle, cfg)
        short = auction_params(SHORT, oracle, cfg)
        assert long.start_price <= long.end_price
        assert short.start_price >= short.end_price
        assert long.start_price > 0 and short.end_price > 0


@pytest.mark.parametrize("kwargs", [dict(start_bps=10, end_bps=-10), dict(duration_slots=0),
                                    dict(duration_slots=256), dict(end_bps=10_000)])
def test_invalid_configs_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        AuctionConfig(**kwargs)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        auction_params(LONG, 0, AuctionConfig())
    with pytest.raises(ValueError):
        auction_params(2, 100, AuctionConfig())
