"""Live Swift flags in `runtime_flags`: set and reset with who/when, read, and the change log.

A flag's row holds its value as JSON under the setting's name (booleans, integers, lists of
markets); a flag without a row has the value the environment gave the daemon at start. Each
change is one transaction: the row, a `runtime_flag_changes` entry and a NOTIFY on
FLAGS_CHANNEL (delivered only if the change commits), which the daemon's flags actor LISTENs to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extras import Json

from storage.database import Database
from trading.routing import LIVE_FLAGS

FLAGS_CHANNEL = "runtime_flags_changed"


@dataclass(frozen=True)
class StoredFlag:
    """A flag's stored value, who set it and when."""

    name: str
    value: Any
    updated_by: str | None
    updated_at: datetime


def _value(raw: Any) -> Any:
    """The JSON value as the settings parser would give it (lists become tuples)."""
    return tuple(raw) if isinstance(raw, list) else raw


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def stored_flags(db: Database) -> dict[str, StoredFlag]:
    """Every live flag that has a stored value, by name."""
    rows = db.fetchall("SELECT key, value, updated_by, updated_at FROM runtime_flags"
                       " WHERE key = ANY(%s)", (list(LIVE_FLAGS),))
    return {r["key"]: StoredFlag(r["key"], _value(r["value"]), r["updated_by"],
                                 r["updated_at"]) for r in rows}


def set_flag(db: Database, name: str, value: Any, changed_by: str,
             reason: str | None = None) -> Any:
    """Store `value` for flag `name` (a parsed setting value); returns the previous stored
    value (None when it had the environment's)."""
    if name not in LIVE_FLAGS:
        raise ValueError(f"{name} is not a live flag")
    with db.connection():
        old = db.fetchone("SELECT value FROM runtime_flags WHERE key = %s FOR UPDATE", (name,))
        db.execute("INSERT INTO runtime_flags (key, value, updated_at, updated_by)"
                   " VALUES (%s, %s, now(), %s) ON CONFLICT (key) DO UPDATE SET"
                   " value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by",
                   (name, Json(_json(value)), changed_by))
        _record(db, name, old["value"] if old else None, _json(value), changed_by, reason)
    return _value(old["value"]) if old else None


def reset_flag(db: Database, name: str, changed_by: str, reason: str | None = None) -> bool:
    """Drop the stored value: the flag has the environment's value again. True if one was set."""
    if name not in LIVE_FLAGS:
        raise ValueError(f"{name} is not a live flag")
    with db.connection():
        old = db.fetchone("DELETE FROM runtime_flags WHERE key = %s RETURNING value", (name,))
        if old is None:
            return False
        _record(db, name, old["value"], None, changed_by, reason)
    return True


def _record(db: Database, name: str, old: Any, new: Any, changed_by: str,
            reason: str | None) -> None:
    db.execute("INSERT INTO runtime_flag_changes (key, old_value, new_value, changed_by, reason)"
               " VALUES (%s, %s, %s, %s, %s)",
               (name, None if old is None else Json(old), None if new is None else Json(new),
                changed_by, reason))
    db.execute("SELECT pg_notify(%s, %s)", (FLAGS_CHANNEL, json.dumps({"flag": name})))


def flag_changes(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The latest changes of live flags, newest first."""
    return db.fetchall("SELECT key AS flag, old_value, new_value, changed_by, reason, changed_at"
                       " FROM runtime_flag_changes ORDER BY changed_at DESC, id DESC LIMIT %s",
                       (limit,))
