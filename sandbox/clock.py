"""The sandbox slot clock: a greenlet ticks it every ``slot_ms``, tests step it by hand.

Everything time-driven in the exchange (oracle walk, Swift order placement, maker fills,
expiry, confirmations) hangs off ``on_slot`` listeners, so stepping the clock is the only way
state evolves with time, which is what makes a seeded run reproducible.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import gevent
import gevent.event

log = logging.getLogger(__name__)

GENESIS_SLOT = 350_000_000


class SlotClock:
    """Monotonic slot counter with listeners; ``slot_ms == 0`` means manual stepping only."""

    def __init__(self, slot_ms: int = 400, genesis_slot: int = GENESIS_SLOT,
                 genesis_ts: float | None = None) -> None:
        self.slot_ms = int(slot_ms)
        self.genesis_slot = genesis_slot
        self.genesis_ts = time.time() if genesis_ts is None else genesis_ts
        self._slot = genesis_slot
        self._listeners: list[Callable[[int], None]] = []
        self._lock = threading.RLock()
        self._ticked = gevent.event.Event()
        self._runner: gevent.Greenlet | None = None

    @property
    def slot(self) -> int:
        """The current slot."""
        return self._slot

    def unix_ts(self) -> int:
        """Chain time: genesis time + elapsed slots at the nominal slot time (400 ms if manual)."""
        return self.unix_ts_at(self._slot)

    def unix_ts_at(self, slot: int) -> int:
        """Chain time of ``slot`` (the Clock sysvar's unix_timestamp at that slot)."""
        ms = self.slot_ms or 400
        return math.floor(self.genesis_ts + (slot - self.genesis_slot) * ms / 1000.0)

    def add_listener(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(new_slot)`` after every tick, in registration order."""
        self._listeners.append(fn)

    def step(self, n: int = 1) -> int:
        """Advance ``n`` slots, running listeners for each; returns the new slot."""
        for _ in range(max(0, int(n))):
            with self._lock:
                self._slot += 1
                slot = self._slot
                for fn in self._listeners:
                    try:
                        fn(slot)
                    except Exception:  # one bad listener must not stop the chain
                        log.exception("slot listener failed at slot %s", slot)
            ev, self._ticked = self._ticked, gevent.event.Event()
            ev.set()
        return self._slot

    def wait_for_slot(self, target: int, timeout: float) -> bool:
        """Block (cooperatively) until slot >= target or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while self._slot < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._ticked.wait(timeout=remaining)
        return True

    def start(self) -> None:
        """Start the ticking greenlet (no-op in manual mode or when already running)."""
        if self.slot_ms <= 0 or self._runner is not None:
            return
        self._runner = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop the ticking greenlet."""
        if self._runner is not None:
            self._runner.kill(block=True, timeout=2.0)
            self._runner = None

    def _run(self) -> None:
        period = self.slot_ms / 1000.0
        next_at = time.monotonic() + period
        while True:
            gevent.sleep(max(0.0, next_at - time.monotonic()))
            next_at += period
            self.step()
