"""Seeded oracle random walk, one independent stream per market, advanced once per slot.

Each market draws from its own ``random.Random`` seeded by (seed, market index), so a market's
price path depends only on the seed and the number of slots elapsed: deterministic, and
unaffected by which other markets exist or are traded.
"""

from __future__ import annotations

import math
import random

from sandbox.markets import MarketSpec


class OracleBook:
    """Current oracle price (1e6 precision) of every market; ``advance`` moves them one slot."""

    def __init__(self, seed: int, markets: dict[int, MarketSpec]) -> None:
        self._markets = markets
        self._rngs = {i: random.Random(f"oracle:{seed}:{i}") for i in markets}
        self._prices = {i: m.initial_price for i, m in markets.items()}
        self._frozen: set[int] = set()

    def price(self, market_index: int) -> int:
        """The oracle price now; KeyError for an unknown market."""
        return self._prices[market_index]

    def prices(self) -> dict[int, int]:
        """A copy of all current prices."""
        return dict(self._prices)

    def set_price(self, market_index: int, price: int, freeze: bool = False) -> None:
        """Pin a price (tests, demos); ``freeze`` keeps it there until unfrozen."""
        self._prices[market_index] = int(price)
        if freeze:
            self._frozen.add(market_index)
        else:
            self._frozen.discard(market_index)

    def advance(self) -> None:
        """One slot of geometric random walk for every market (frozen ones still draw)."""
        for i, rng in self._rngs.items():
            step = rng.gauss(0.0, self._markets[i].volatility_bps / 10_000.0)
            if i in self._frozen:
                continue
            self._prices[i] = max(1, round(self._prices[i] * math.exp(step)))
