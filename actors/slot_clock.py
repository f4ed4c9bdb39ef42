"""VenueState's slot clock on its own: plain arithmetic extrapolating slot and time from reads,
and the reading it publishes so that every actor knows the slot without asking for it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from venue.snapshot import ChainTime

MIN_SPAN_SLOTS = 5  # observed slot time is trusted once the clock has seen this many slots
MIN_SPAN_S = 1.0  # ...over at least this long


@dataclass(frozen=True)
class ClockReading:
    """The clock as of its last read: enough to extrapolate the slot and unix time from."""

    slot: int
    unix_ts: int
    at: float  # monotonic time of the read
    slot_ms: float

    def chain_time(self) -> ChainTime:
        """The slot and unix time now, extrapolated at the observed slot time."""
        elapsed = time.monotonic() - self.at
        return ChainTime(self.slot + int(elapsed * 1000 / self.slot_ms),
                         self.unix_ts + int(elapsed), self.slot_ms)


class PublishedClock:
    """The slot clock's last reading, for the actors of one process to extrapolate from.

    Its one writer (VenueState) replaces the reading whole after each read; nobody mutates it,
    so reading it takes neither a lock nor a message: a fan-out's orders learn the slot
    without an ask per order. None until the first read."""

    def __init__(self) -> None:
        self.reading: ClockReading | None = None


@dataclass
class SlotClock:
    """The last slot and unix time read (and when), and the slot time observed so far."""

    slot: int = 0
    unix_ts: int = 0
    at: float = 0.0
    first_slot: int = 0
    first_at: float = 0.0
    refreshing: bool = False
    slot_ms: float = 400.0

    def reading(self) -> ClockReading:
        """What the clock knows now, as an immutable value."""
        return ClockReading(self.slot, self.unix_ts, self.at, self.slot_ms)

    def chain_time(self) -> ChainTime:
        """The slot and unix time now, extrapolated at the observed slot time."""
        return self.reading().chain_time()

    def tick(self, slot: int, unix_ts: int | None, started: float) -> None:
        """A read at `slot` (sent at `started`): resynchronise the clock and its slot time."""
        if slot < self.slot:
            return
        if self.first_at == 0.0:
            self.first_slot, self.first_at = slot, started
        elif slot - self.first_slot >= MIN_SPAN_SLOTS and started - self.first_at >= MIN_SPAN_S:
            self.slot_ms = (started - self.first_at) * 1000 / (slot - self.first_slot)
        self.slot, self.at = slot, started
        if unix_ts is not None:
            self.unix_ts = unix_ts
        self.refreshing = False
