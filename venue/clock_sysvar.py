"""The Clock sysvar: the chain's own slot and unix time, as the Drift program sees them.

The program compares an order's ``max_ts`` with ``Clock::unix_timestamp`` (not with our wall
clock), so code that reasons about "is this order still alive" reads the sysvar account
(getAccountInfo / getMultipleAccounts, base64) and decodes it with :func:`read_clock`.

Layout (bincode, 40 bytes, little-endian): slot u64, epoch_start_timestamp i64, epoch u64,
leader_schedule_epoch u64, unix_timestamp i64.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey

CLOCK_SYSVAR = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")
CLOCK_SIZE = 40
_LAYOUT = struct.Struct("<QqQQq")


@dataclass(frozen=True)
class ChainClock:
    """The parts of the Clock sysvar the venue layer uses."""

    slot: int
    unix_timestamp: int


def read_clock(data: bytes) -> ChainClock:
    """Decode Clock sysvar account data; ValueError unless it is at least 40 bytes."""
    if len(data) < CLOCK_SIZE:
        raise ValueError(f"Clock sysvar data is {len(data)} bytes, expected {CLOCK_SIZE}")
    slot, _epoch_start, _epoch, _leader_epoch, unix_timestamp = _LAYOUT.unpack_from(data)
    return ChainClock(slot=slot, unix_timestamp=unix_timestamp)
