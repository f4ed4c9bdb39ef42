"""The stored row MACs (security.row_macs): sealing, checking and re-sealing them in their tables.

Rows written before migration 0014 get their MAC once (`ensure_backfilled`); after that a NULL
MAC is refused. A MAC under an older server key is moved to the current one on use
(`check_bot_binding`) or all at once (`reseal_all`, for `keys reencrypt`), always by
compare-and-swap, so a row changed meanwhile keeps its MAC and is refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from security.policy import BotPolicy, verify_policy_hmac
from security.row_macs import (
    BOT,
    RETRY,
    SHARE,
    TERMS,
    bot_fields,
    check,
    retry_fields,
    share_fields,
    sign,
    terms_fields,
    within_share_cap,
)
from security.server_key import ServerKeyRing
from storage.bots import Bot, get_bot
from storage.database import Database

log = logging.getLogger(__name__)

BACKFILL_MARKER = "row_macs.backfilled"

_TABLES: dict[str, tuple[str, str, Callable[[Any], list[Any]]]] = {
    # kind -> (table, MAC column, the rows' fields)
    BOT: ("trading_bots", "binding_mac", bot_fields),
    TERMS: ("published_bots", "terms_mac", terms_fields),
    SHARE: ("pending_profit_shares", "share_mac", share_fields),
    RETRY: ("trade_retry_queue", "job_mac", retry_fields),
}
_BACKFILLED_ROWS = {  # kind -> which NULL-MAC rows the backfill MACs (the others stay refused)
    BOT: "", TERMS: "",
    SHARE: " AND status IN ('pending', 'sending')",
    RETRY: " AND status IN ('pending', 'running')",
}
_BOT_FENCE = (" AND wallet_address = %s AND market = %s AND market_index = %s"
              " AND drift_subaccount_id = %s AND leverage = %s AND max_position_size = %s"
              " AND source_published_bot_id IS NOT DISTINCT FROM %s")

_backfilled: set[str] = set()
_lock = threading.Lock()


def _reseal(db: Database, ring: ServerKeyRing, kind: str, row: dict[str, Any]) -> bool:
    """MAC a row (read with `SELECT *`) under the current key, only while its stored MAC is
    still the one it was read with."""
    table, column, fields_of = _TABLES[kind]
    return db.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s"
                      f" AND {column} IS NOT DISTINCT FROM %s",
                      (sign(ring, kind, fields_of(row)), row["id"], row[column])) == 1


# --- the one-time backfill ----------------------------------------------------------------------


def ensure_backfilled(db: Database, ring: ServerKeyRing, state_dir: str | Path | None) -> None:
    """Once per database and process: MAC the rows written before migration 0014.

    Runs only while `row_mac_backfill` says 'pending' and this daemon's STATE_DIR has no marker
    file; afterwards both say done, so a row whose MAC is set to NULL by SQL is refused rather
    than MAC'd. A bot's binding is MAC'd only if its policy MAC verifies; an IOU only if its
    amount is within percent x PnL.
    """
    if db.dsn in _backfilled:
        return
    with _lock:
        if db.dsn in _backfilled:
            return
        marker = Path(state_dir) / BACKFILL_MARKER if state_dir else None
        with db.connection():  # one transaction; the row lock keeps two daemons apart
            row = db.fetchone("SELECT state FROM row_mac_backfill WHERE id = 1 FOR UPDATE")
            if (row is not None and row["state"] == "pending"
                    and not (marker and marker.exists())):
                counts = _backfill(db, ring)
                db.execute("UPDATE row_mac_backfill SET state = 'done', done_at = now()"
                           " WHERE id = 1")
                log.info("row MAC backfill done: %s", counts)
        if marker is not None and not marker.exists():
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("row MACs backfilled; NULL MACs are refused\n")
            except OSError as exc:
                log.warning("backfill marker not written (%s)", type(exc).__name__)
        _backfilled.add(db.dsn)


def _backfill(db: Database, ring: ServerKeyRing) -> dict[str, int]:
    """MAC every NULL-MAC row that existed before the migration (inside one transaction)."""
    counts: dict[str, int] = {}
    for kind, (table, column, _fields) in _TABLES.items():
        rows = db.fetchall(f"SELECT * FROM {table} WHERE {column} IS NULL"
                           + _BACKFILLED_ROWS[kind])
        counts[kind] = sum(_reseal(db, ring, kind, row) for row in rows
                           if _may_backfill(ring, kind, row))
    return counts


def _may_backfill(ring: ServerKeyRing, kind: str, row: dict[str, Any]) -> bool:
    """A bot only if its policy MAC verifies; an IOU only if within percent x PnL."""
    if kind == BOT:
        policy = BotPolicy(row["id"], row["market"], row["leverage"], row["max_position_size"])
        return verify_policy_hmac(ring.policy_keys(), policy, row["policy_hmac"]).ok
    if kind == SHARE:
        return within_share_cap(row["amount"], row["realized_pnl"], row["profit_share_percent"])
    return True


# --- bot bindings -------------------------------------------------------------------------------


def seal_bot(db: Database, ring: ServerKeyRing, bot_id: str) -> bool:
    """MAC a bot's binding over its row as stored now; call right where those fields are
    written (bot create, subscribe, a sub-account move), never on a row read back later."""
    bot = get_bot(db, bot_id)
    if bot is None:
        return False
    return db.execute("UPDATE trading_bots SET binding_mac = %s WHERE id = %s",
                      (sign(ring, BOT, bot_fields(bot)), bot_id)) == 1


def check_bot_binding(db: Database, ring: ServerKeyRing, bot: Bot) -> str | None:
    """None if the bot's binding MAC covers these exact values, else the refusal reason.

    The caller has verified the bot's policy MAC first."""
    row = db.fetchone("SELECT binding_mac FROM trading_bots WHERE id = %s", (bot.id,))
    if row is None:
        return "bot_missing"
    return binding_reason(db, ring, bot, row["binding_mac"])


def binding_reason(db: Database, ring: ServerKeyRing, bot: Bot, stored: str | None) -> str | None:
    """`check_bot_binding` for a binding MAC the caller has read (re-sealed under the current
    key if it verifies under an older one)."""
    fields = bot_fields(bot)
    if stored is None:  # every writer seals (bot create, subscribe, a sub-account move)
        return f"{BOT}_mac_missing"
    verdict = check(ring, BOT, fields, stored)
    if not verdict.ok:
        return verdict.reason
    if verdict.needs_resign:
        _swap_bot_mac(db, bot, stored, sign(ring, BOT, fields))
    return None


def _swap_bot_mac(db: Database, bot: Bot, old: str | None, new: str) -> bool:
    """Compare-and-swap the binding MAC while every covered field is as given."""
    return db.execute(
        "UPDATE trading_bots SET binding_mac = %s WHERE id = %s"
        " AND binding_mac IS NOT DISTINCT FROM %s" + _BOT_FENCE,
        (new, bot.id, old, bot.wallet_address, bot.market, bot.market_index,
         bot.drift_subaccount_id, bot.leverage, bot.max_position_size,
         bot.source_published_bot_id)) == 1


# --- rotation -----------------------------------------------------------------------------------


def reseal_all(db: Database, ring: ServerKeyRing) -> dict[str, dict[str, int]]:
    """`keys reencrypt`: move every verifying row MAC to the current key (compare-and-swap on
    the old MAC); rows that do not verify are counted as refused and left untouched."""
    report: dict[str, dict[str, int]] = {}
    for kind, (table, column, fields_of) in _TABLES.items():
        counts = {"moved": 0, "current": 0, "refused": 0}
        for row in db.fetchall(f"SELECT * FROM {table} WHERE {column} IS NOT NULL"):
            verdict = check(ring, kind, fields_of(row), row[column])
            if not verdict.ok:
                counts["refused"] += 1
            elif not verdict.needs_resign:
                counts["current"] += 1
            elif _reseal(db, ring, kind, row):
                counts["moved"] += 1
        report[kind] = counts
    return report


def mac_key_ids_in_use(db: Database) -> dict[str, int]:
    """How many row MACs name each server key id (an old key is removable when absent)."""
    found: dict[str, int] = {}
    for table, column, _fields in _TABLES.values():
        for row in db.fetchall(f"SELECT split_part({column}, '.', 2) AS key_id, count(*) AS n"
                               f" FROM {table} WHERE {column} IS NOT NULL GROUP BY 1"):
            found[row["key_id"]] = found.get(row["key_id"], 0) + int(row["n"])
    return found
