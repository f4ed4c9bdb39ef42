"""The chain's time and one market as read at one slot: what every order of a signal is built on.

A snapshot is stored with the source signal (JSON), so a subscriber copy run later, in this
process or another, is sized and signed against the same slot and oracle price.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from solders.pubkey import Pubkey

from venue.perp_market import MarketState


@dataclass(frozen=True)
class ChainTime:
    """The chain's slot and unix time (extrapolated between reads); `slot_ms` as observed."""

    slot: int
    unix_ts: int
    slot_ms: float


@dataclass(frozen=True)
class MarketSnapshot:
    """One market read at one slot (`unix_ts`: the chain's time then)."""

    slot: int
    unix_ts: int
    slot_ms: float
    market: MarketState

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (pubkeys as base58)."""
        market = {f.name: getattr(self.market, f.name) for f in fields(self.market)}
        market["oracle"] = str(self.market.oracle)
        return {"slot": self.slot, "unix_ts": self.unix_ts, "slot_ms": self.slot_ms,
                "market": market}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MarketSnapshot:
        """The inverse of to_json."""
        market = dict(data["market"])
        market["oracle"] = Pubkey.from_string(market["oracle"])
        return cls(int(data["slot"]), int(data["unix_ts"]), float(data["slot_ms"]),
                   MarketState(**market))

    def slots_behind(self, now: ChainTime) -> int:
        """How many slots the chain has moved on since this snapshot."""
        return max(0, now.slot - self.slot)
