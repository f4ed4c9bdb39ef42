"""Emergency stop flags: per wallet (columns of `wallets`) and global (`runtime_flags`).

Stored modes are "stop" and "flatten" (0001's vocabulary); they map to
`security.emergency_stop.StopMode.STOP` / `STOP_AND_FLATTEN`. Every set makes a new stop id, so a
flatten ticket of a cleared or replaced stop no longer matches (see security.emergency_stop).
Each change also sends `NOTIFY quantumvault_emergency_stop` with {scope, wallet, mode, stop_id}
so a running daemon can react at once; enforcement never depends on it, because the trade guard
reads these flags from the database before every order.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from security.emergency_stop import NO_STOP, StopMode, StopState
from storage.database import Database
from storage.signals import record_flatten_signals

GLOBAL_STOP_FLAG = "global_emergency_stop"
NOTIFY_CHANNEL = "quantumvault_emergency_stop"
_TO_MODE = {"stop": StopMode.STOP, "flatten": StopMode.STOP_AND_FLATTEN}
_FROM_MODE = {StopMode.STOP: "stop", StopMode.STOP_AND_FLATTEN: "flatten"}


@dataclass(frozen=True)
class StopRecord:
    """One stop flag as stored: scope, state (mode + id), why and when."""

    scope: str  # "global" | "wallet"
    wallet_address: str | None
    state: StopState
    reason: str | None = None
    set_at: datetime | str | None = None

    @property
    def active(self) -> bool:
        """True while any stop mode is set."""
        return self.state.mode is not StopMode.NONE

    @property
    def mode(self) -> str:
        """"stop", "flatten" or "none"."""
        return _FROM_MODE.get(self.state.mode, "none")


def _state(mode: str | None, stop_id: str | None) -> StopState:
    """Stored mode/id to a StopState; an unknown mode fails closed as a plain stop."""
    if not mode or mode == "none":
        return NO_STOP
    stop_mode = _TO_MODE.get(mode, StopMode.STOP)
    if stop_mode is StopMode.STOP_AND_FLATTEN and not stop_id:
        stop_mode = StopMode.STOP
    return StopState(stop_mode, stop_id)


def _global(value: dict[str, Any] | None) -> StopRecord:
    """runtime_flags value to a StopRecord."""
    value = value or {}
    return StopRecord("global", None, _state(value.get("mode"), value.get("stop_id")),
                      value.get("reason"), value.get("set_at"))


def _notify(db: Database, payload: dict[str, Any]) -> None:
    """Tell listening daemons (same transaction: sent only if the change commits)."""
    db.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, json.dumps(payload)))


def global_stop(db: Database) -> StopRecord:
    """The global stop flag (inactive when never set)."""
    row = db.fetchone("SELECT value FROM runtime_flags WHERE key = %s", (GLOBAL_STOP_FLAG,))
    return _global(row["value"] if row else None)


def wallet_stop(db: Database, address: str) -> StopRecord | None:
    """The wallet's stop flag, or None when the wallet does not exist."""
    row = db.fetchone(
        "SELECT emergency_stop_triggered AS on, emergency_stop_mode AS mode,"
        " emergency_stop_id AS stop_id, emergency_stop_reason AS reason,"
        " emergency_stop_at AS set_at FROM wallets WHERE address = %s",
        (address,),
    )
    if row is None:
        return None
    state = _state(row["mode"] or "stop", row["stop_id"]) if row["on"] else NO_STOP
    return StopRecord("wallet", address, state, row["reason"], row["set_at"])


# the global flag and one wallet's, as columns of one row (a missing wallet: wallet_exists false)
STOP_COLUMNS = (
    "(SELECT value FROM runtime_flags WHERE key = %(stop_flag)s) AS global_stop,"
    " w.address IS NOT NULL AS wallet_exists, w.emergency_stop_triggered AS wallet_on,"
    " w.emergency_stop_mode AS wallet_mode, w.emergency_stop_id AS wallet_stop_id")
STOP_JOIN = "LEFT JOIN wallets w ON w.address = {wallet}"  # {wallet}: an expression


def stop_params(wallet_address: str | None = None) -> dict[str, Any]:
    """The parameters STOP_COLUMNS and STOP_JOIN name (STOP_JOIN's wallet as %(stop_wallet)s;
    None: the statement names the wallet itself)."""
    params = {"stop_flag": GLOBAL_STOP_FLAG}
    return params if wallet_address is None else params | {"stop_wallet": wallet_address}


def stops_of(row: dict[str, Any]) -> tuple[StopState, StopState]:
    """(global, wallet) from a row read with STOP_COLUMNS; a missing wallet counts as stopped."""
    glob = _global(row["global_stop"]).state
    if not row["wallet_exists"]:
        return glob, StopState(StopMode.STOP, None)
    on = row["wallet_on"]
    return glob, (_state(row["wallet_mode"] or "stop", row["wallet_stop_id"]) if on else NO_STOP)


def stop_states(db: Database, wallet_address: str) -> tuple[StopState, StopState]:
    """(global, wallet) stop states, read in one statement (one snapshot); a missing wallet
    counts as stopped."""
    row = db.fetchone(f"SELECT {STOP_COLUMNS} FROM (SELECT 1) AS one"
                      f" {STOP_JOIN.format(wallet='%(stop_wallet)s')}",
                      stop_params(wallet_address))
    assert row is not None
    return stops_of(row)


def set_global_stop(db: Database, *, flatten: bool, reason: str | None) -> StopRecord:
    """Set (or replace) the global stop; returns the new record with its fresh stop id."""
    mode = "flatten" if flatten else "stop"
    stop_id = uuid.uuid4().hex
    with db.connection():
        row = db.fetchone(
            "INSERT INTO runtime_flags (key, value, updated_at) VALUES (%s, jsonb_build_object("
            "'mode', %s::text, 'stop_id', %s::text, 'reason', %s::text, 'set_at', now()), now())"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
            " RETURNING value",
            (GLOBAL_STOP_FLAG, mode, stop_id, reason),
        )
        _notify(db, {"scope": "global", "wallet": None, "mode": mode, "stop_id": stop_id})
        if flatten:
            bots = [r["id"] for r in db.fetchall("SELECT id FROM trading_bots")]
            record_flatten_signals(db, bots, stop_id, "global")
    assert row is not None
    return _global(row["value"])


def clear_global_stop(db: Database) -> bool:
    """Clear the global stop; returns whether it was set."""
    with db.connection():
        was = global_stop(db).active
        db.execute(
            "INSERT INTO runtime_flags (key, value, updated_at) VALUES (%s, jsonb_build_object("
            "'mode', 'none', 'cleared_at', now()), now())"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            (GLOBAL_STOP_FLAG,),
        )
        _notify(db, {"scope": "global", "wallet": None, "mode": "none", "stop_id": None})
    return was


def set_wallet_stop(
    db: Database, address: str, *, flatten: bool, reason: str | None
) -> StopRecord | None:
    """Set (or replace) one wallet's stop; None when the wallet does not exist."""
    mode = "flatten" if flatten else "stop"
    stop_id = uuid.uuid4().hex
    with db.connection():
        touched = db.execute(
            "UPDATE wallets SET emergency_stop_triggered = true, emergency_stop_mode = %s,"
            " emergency_stop_id = %s, emergency_stop_reason = %s, emergency_stop_at = now(),"
            " updated_at = now() WHERE address = %s",
            (mode, stop_id, reason, address),
        )
        if touched != 1:
            return None
        _notify(db, {"scope": "wallet", "wallet": address, "mode": mode, "stop_id": stop_id})
        if flatten:
            bots = [r["id"] for r in db.fetchall(
                "SELECT id FROM trading_bots WHERE wallet_address = %s", (address,))]
            record_flatten_signals(db, bots, stop_id, "wallet")
        return wallet_stop(db, address)


def clear_wallet_stop(db: Database, address: str) -> bool | None:
    """Clear one wallet's stop; whether it was set, or None when the wallet does not exist."""
    with db.connection():
        record = wallet_stop(db, address)
        if record is None:
            return None
        db.execute(
            "UPDATE wallets SET emergency_stop_triggered = false, emergency_stop_mode = NULL,"
            " emergency_stop_id = NULL, emergency_stop_reason = NULL, emergency_stop_at = NULL,"
            " updated_at = now() WHERE address = %s",
            (address,),
        )
        _notify(db, {"scope": "wallet", "wallet": address, "mode": "none", "stop_id": None})
    return record.active
