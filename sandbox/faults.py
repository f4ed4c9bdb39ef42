"""Runtime fault injection: what the sandbox should break, set over HTTP or the CLI.

One ``Faults`` object is shared by the Swift routes, the JSON-RPC routes and the makers. It is
changed only through ``update``/``clear`` (POST/DELETE /sandbox/faults), validated so that a
typo is an error rather than a silently ignored knob.

The HTTP-level timing knobs (``rpc_latency_ms``, ``swift_latency_ms``, ``rpc_rps_limit``) can
also be given at start-up (``--rpc-latency-ms`` etc.): those values become the *baseline*, and
clearing faults returns to the baseline rather than to zero, so a test that clears its faults
does not undo the venue timing the sandbox was started with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

SWIFT_STATUS_CHOICES = (429, 500, 502, 503, 504)
RPC_DOWN_MODES = ("503", "reset", "hang")
MAX_HANG_MS = 30_000
MAX_RPS_LIMIT = 1_000_000


@dataclass
class Faults:
    """Active faults; all defaults mean a healthy venue."""

    latency_ms: int = 0  # added to every Swift and RPC response
    swift_latency_ms: int = 0  # added to Swift routes only
    rpc_latency_ms: int = 0  # added to JSON-RPC routes only
    rpc_rps_limit: int = 0  # JSON-RPC calls/s per path (token bucket, burst = limit); 0 = off
    swift_status: int | None = None  # POST /orders answers this status, order not processed
    swift_status_count: int | None = None  # how many requests the override lasts (None: all)
    swift_timeout: bool = False  # POST /orders hangs hang_ms before answering
    swift_timeout_process: bool = True  # ...and still processes the order (unknown outcome)
    hang_ms: int = 10_000  # how long a "timeout" hangs (bounded by MAX_HANG_MS)
    health_412: bool = False  # /health and /confirmation/health answer 412
    hash_status_500: bool = False  # /confirmation/hash-status answers 500 "error finding"
    rpc_primary_down: bool = False  # POST / fails (mode below); /backup still works
    rpc_backup_down: bool = False  # POST /backup fails
    rpc_down_mode: str = "503"  # "503" HTTP 503, "reset" drop connection, "hang" hang_ms
    makers_paused: bool = False  # makers stop filling Swift auctions and placeAndTake
    swift_makers_paused: bool = False  # no maker bids in Swift auctions; the AMM still fills
    #                                    placeAndTake (a market with no Swift liquidity)
    swift_placement_paused: bool = False  # accepted Swift orders wait, never get placed
    swift_makers_paused_for: str = ""  # comma-separated authorities whose Swift auctions get
    #                                    no maker bids (one taker's auction runs its course)

    def __post_init__(self) -> None:
        self._baseline: dict[str, Any] = {}  # start-up values that clear() returns to

    def set_baseline(self, values: dict[str, Any]) -> None:
        """Start-up values (CLI flags): applied now and restored by every clear."""
        self.update({"clear": True, **values})
        self._baseline = {k: v for k, v in values.items() if k != "clear"}

    def _fresh(self) -> Faults:
        fresh = Faults()
        for key, value in self._baseline.items():
            setattr(fresh, key, value)
        return fresh

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update; ValueError on an unknown knob or a bad value."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known - {"clear"}
        if unknown:
            raise ValueError(f"unknown fault knob(s): {sorted(unknown)}")
        trial = self._fresh() if changes.get("clear") else replace(self)
        for key, value in changes.items():
            if key != "clear":
                setattr(trial, key, value)
        trial._validate()
        for f in fields(self):
            setattr(self, f.name, getattr(trial, f.name))

    def clear(self) -> None:
        """Back to a healthy venue (with the start-up baseline, if any)."""
        fresh = self._fresh()
        for f in fields(self):
            setattr(self, f.name, getattr(fresh, f.name))

    def consume_swift_status(self) -> int | None:
        """The status override for this request, counting it down when it is limited."""
        if self.swift_status is None:
            return None
        status = self.swift_status
        if self.swift_status_count is not None:
            self.swift_status_count -= 1
            if self.swift_status_count <= 0:
                self.swift_status = None
                self.swift_status_count = None
        return status

    def hang_seconds(self) -> float:
        """The bounded hang of a simulated timeout, in seconds."""
        return min(max(0, int(self.hang_ms)), MAX_HANG_MS) / 1000.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view (GET /sandbox/faults)."""
        return asdict(self)

    def _validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be true or false")
            elif isinstance(f.default, int) or f.default is None:
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise ValueError(f"{f.name} must be an integer")
                if value is None and f.default is not None:
                    raise ValueError(f"{f.name} must be an integer")
        if self.swift_status is not None and int(self.swift_status) not in SWIFT_STATUS_CHOICES:
            raise ValueError(f"swift_status must be one of {SWIFT_STATUS_CHOICES}")
        if self.rpc_down_mode not in RPC_DOWN_MODES:
            raise ValueError(f"rpc_down_mode must be one of {RPC_DOWN_MODES}")
        if not isinstance(self.swift_makers_paused_for, str):
            raise ValueError("swift_makers_paused_for must be comma-separated authorities")
        for name in ("latency_ms", "swift_latency_ms", "rpc_latency_ms", "hang_ms"):
            value = int(getattr(self, name))
            if value < 0 or value > MAX_HANG_MS:
                raise ValueError(f"{name} must be within 0..{MAX_HANG_MS}")
            setattr(self, name, value)
        if not 0 <= int(self.rpc_rps_limit) <= MAX_RPS_LIMIT:
            raise ValueError(f"rpc_rps_limit must be within 0..{MAX_RPS_LIMIT}")
