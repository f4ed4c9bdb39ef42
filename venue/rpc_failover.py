"""RpcFailover: which endpoint (primary or backup) to use, apart from the one-endpoint client."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from venue.rpc_client import AllRpcDown, RpcError, RpcTransportError, SolanaRpc

PROBE_TIMEOUT_S = 5.0
FAILOVER_COOLDOWN_S = 180.0


class Endpoint(StrEnum):
    """Which RPC endpoint is active."""

    PRIMARY = "primary"
    BACKUP = "backup"


@dataclass
class FailoverState:
    """The whole failover state: active endpoint, switch time, primary failures."""

    active: Endpoint = Endpoint.PRIMARY
    switched_to_backup_at: float | None = None
    consecutive_primary_failures: int = 0


class RpcFailover:
    """Pick a working endpoint: probe with getSlot, switch to backup, retry primary after cooldown.

    Rules:

    1. On backup and the cooldown (default 180 s) has passed since the switch: probe primary;
       if it answers, go back to it, otherwise stay on backup and restart the cooldown.
    2. Probe the active endpoint with getSlot (5 s timeout); if it answers, use it.
    3. If primary fails: count the failure and switch to backup if backup answers its probe.
       If backup fails while active: probe primary at once (backup is no better).
    4. If nothing answers, raise :class:`AllRpcDown` and leave the state on primary, so the
       next call starts from the primary again rather than waiting out a cooldown for nothing.

    A plain object (no threads, no locks) meant to live inside the one actor that owns RPC
    state (legacy_executor); its clock is injectable so the cooldown is tested without waiting.
    """

    def __init__(
        self,
        primary: SolanaRpc,
        backup: SolanaRpc | None,
        *,
        cooldown_s: float = FAILOVER_COOLDOWN_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        on_switch: Callable[[Endpoint, Endpoint], None] | None = None,
    ) -> None:
        self.primary = primary
        self.backup = backup
        self.cooldown_s = cooldown_s
        self.probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._on_switch = on_switch
        self.state = FailoverState()
        self.last_slot: int | None = None

    def active(self) -> SolanaRpc:
        """The currently active client, without probing."""
        if self.state.active is Endpoint.BACKUP and self.backup is not None:
            return self.backup
        return self.primary

    def _probe(self, client: SolanaRpc) -> bool:
        try:
            self.last_slot = client.get_slot(timeout_s=self.probe_timeout_s)
        except (RpcError, RpcTransportError, ValueError, TypeError, KeyError):
            return False
        return True

    def _switch(self, to: Endpoint) -> None:
        before = self.state.active
        self.state.active = to
        if to is Endpoint.BACKUP:
            self.state.switched_to_backup_at = self._clock()
        else:
            self.state.switched_to_backup_at = None
        if self._on_switch is not None and before is not to:
            self._on_switch(before, to)

    def _primary_probe(self) -> bool:
        ok = self._probe(self.primary)
        if ok:
            self.state.consecutive_primary_failures = 0
        else:
            self.state.consecutive_primary_failures += 1
        return ok

    def working_client(self) -> SolanaRpc:
        """Return a client that just answered getSlot, switching endpoints per the rules."""
        st = self.state
        if st.active is Endpoint.BACKUP and self.backup is not None:
            since = self._clock() - (st.switched_to_backup_at or 0.0)
            primary_tried = False
            if since >= self.cooldown_s:
                primary_tried = True
                if self._primary_probe():
                    self._switch(Endpoint.PRIMARY)
                    return self.primary
                st.switched_to_backup_at = self._clock()
            if self._probe(self.backup):
                return self.backup
            if not primary_tried and self._primary_probe():
                self._switch(Endpoint.PRIMARY)
                return self.primary
            self._switch(Endpoint.PRIMARY)
            raise AllRpcDown("primary and backup RPC both failed the getSlot probe")

        if self._primary_probe():
            return self.primary
        if self.backup is not None and self._probe(self.backup):
            self._switch(Endpoint.BACKUP)
            return self.backup
        raise AllRpcDown("primary RPC failed the getSlot probe and no backup answered")

