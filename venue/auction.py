"""Dutch-auction parameters for Swift market orders, derived from the oracle price.

The venue rejects market/oracle orders without auction parameters (``InvalidOrderAuction``) and
requires long start <= end, short start >= end. Public examples use oracle -10 bps -> +10 bps
over 50 slots for a long (mirrored for a short); those are the defaults here, all configurable.
Offsets are expressed from the taker's point of view: a negative bps is a better price for the
taker (lower for a long, higher for a short), so one config serves both directions and the
ordering invariant holds by construction whenever ``start_bps <= end_bps``.
"""

from __future__ import annotations

from dataclasses import dataclass

LONG = 0
SHORT = 1
_BPS = 10_000


@dataclass(frozen=True)
class AuctionConfig:
    """Auction shape: start/end offsets from the oracle in bps (taker's view) and duration."""

    start_bps: int = -10
    end_bps: int = 10
    duration_slots: int = 50

    def __post_init__(self) -> None:
        if self.start_bps > self.end_bps:
            raise ValueError("auction start_bps must be <= end_bps")
        if not 1 <= self.duration_slots <= 255:
            raise ValueError("auction duration_slots must be in 1..255 (u8)")
        if abs(self.start_bps) >= _BPS or abs(self.end_bps) >= _BPS:
            raise ValueError("auction offsets must be smaller than 10000 bps")


@dataclass(frozen=True)
class AuctionParams:
    """The three Option fields of OrderParams that describe the auction (prices 1e6)."""

    duration: int
    start_price: int
    end_price: int


def _offset(price: int, bps: int) -> int:
    """``price * bps / 1e4`` rounded toward zero, in integer arithmetic."""
    magnitude = price * abs(bps) // _BPS
    return magnitude if bps >= 0 else -magnitude


def auction_params(direction: int, oracle_price: int, config: AuctionConfig) -> AuctionParams:
    """Auction start/end for ``direction`` (LONG=0, SHORT=1) around ``oracle_price`` (1e6)."""
    if oracle_price <= 0:
        raise ValueError("oracle price must be positive")
    if direction == LONG:
        start = oracle_price + _offset(oracle_price, config.start_bps)
        end = oracle_price + _offset(oracle_price, config.end_bps)
    elif direction == SHORT:
        start = oracle_price - _offset(oracle_price, config.start_bps)
        end = oracle_price - _offset(oracle_price, config.end_bps)
    else:
        raise ValueError("direction must be LONG (0) or SHORT (1)")
    return AuctionParams(duration=config.duration_slots, start_price=start, end_price=end)
