"""MACs of the rows that move money: bot bindings, publication terms, profit-share IOUs, retries.

Each MAC is HMAC-SHA256 under the policy key of one server key (`ServerKeyRing.policy_keys()`,
as the policy MAC), over a per-kind domain tag and the row's fields, each as a 4-byte
big-endian length plus UTF-8 bytes; numbers go through `security.policy.canonical_decimal`
(signed values carry their sign in front). Stored as "v1.<key_id>.<64 hex>". A MAC that
verifies under an older key is re-signed under the current one on use (compare-and-swap), as
the policy MAC is. The row id is always inside the MAC, so a MAC copied onto another row fails.

Rows written before migration 0014 get their MAC once (`ensure_backfilled`); after that a
NULL MAC is refused, except a bot binding or publication terms whose writer has not yet been
taught to seal them (see `seal_unsealed_bot`, `seal_unsealed_terms`: transitional rules).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from security.policy import canonical_decimal
from security.server_key import ServerKeyRing

log = logging.getLogger(__name__)

_STORED_RE = re.compile(r"^v1\.([A-Za-z0-9._:\-]{1,64})\.([0-9a-f]{64})\Z")

BOT = "bot_binding"
TERMS = "publication_terms"
SHARE = "profit_share"
RETRY = "retry_job"
_DOMAINS = {
    BOT: b"QuantumVault v1 bot-binding\x00",
    TERMS: b"QuantumVault v1 publication-terms\x00",
    SHARE: b"QuantumVault v1 profit-share-iou\x00",
    RETRY: b"QuantumVault v1 retry-job\x00",
}
BACKFILL_MARKER = "row_macs.backfilled"


@dataclass(frozen=True)
class MacCheck:
    """Verdict: ok, or a refusal reason ("<kind>_mac_missing", ..._mismatch, ...)."""

    ok: bool
    reason: str | None = None
    needs_resign: bool = False


def _text(value: Any) -> str:
    """One field as canonical text: None -> "", bool -> "1"/"0", numbers via Decimal."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, Decimal)):
        dec = Decimal(value)
        return ("-" + canonical_decimal(-dec)) if dec < 0 else canonical_decimal(dec)
    if isinstance(value, str):
        return value
    raise ValueError(f"unsupported MAC field type {type(value).__name__}")


def canonical(kind: str, fields: Sequence[Any]) -> bytes:
    """The exact bytes a MAC of this kind covers."""
    encoded = [_text(f).encode("utf-8") for f in fields]
    return _DOMAINS[kind] + b"".join(struct.pack(">I", len(raw)) + raw for raw in encoded)


def sign(ring: ServerKeyRing, kind: str, fields: Sequence[Any]) -> str:
    """MAC a row under the current server key."""
    kid = ring.current_key_id
    digest = hmac.new(ring.policy_keys()[kid], canonical(kind, fields), hashlib.sha256)
    return f"v1.{kid}.{digest.hexdigest()}"


def verify(keys: Mapping[str, bytes], kind: str, fields: Sequence[Any], stored: str | None,
           current_key_id: str | None = None) -> MacCheck:
    """Check a stored row MAC in constant time; never raises on bad data, refuses instead."""
    if not stored:
        return MacCheck(False, f"{kind}_mac_missing")
    match = _STORED_RE.match(stored)
    if match is None:
        return MacCheck(False, f"{kind}_mac_malformed")
    key = keys.get(match.group(1))
    if key is None:
        return MacCheck(False, f"{kind}_mac_unknown_key")
    try:
        message = canonical(kind, fields)
    except ValueError:
        return MacCheck(False, f"{kind}_invalid_field")
    expected = hmac.new(key, message, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, bytes.fromhex(match.group(2))):
        return MacCheck(False, f"{kind}_mac_mismatch")
    return MacCheck(True, needs_resign=current_key_id is not None
                    and match.group(1) != current_key_id)


def check(ring: ServerKeyRing, kind: str, fields: Sequence[Any], stored: str | None) -> MacCheck:
    """`verify` against every key of the ring, noting a MAC under an older key."""
    return verify(ring.policy_keys(), kind, fields, stored, ring.current_key_id)


# --- the fields of each kind --------------------------------------------------------------------


def bot_fields(bot: Any) -> list[Any]:
    """What a bot's binding MAC covers (a storage.bots.Bot or a row dict)."""
    get = _getter(bot)
    return [get("id"), get("wallet_address"), get("market"), int(get("market_index")),
            int(get("drift_subaccount_id")), Decimal(get("leverage")),
            Decimal(get("max_position_size")), get("source_published_bot_id")]


def terms_fields(published: Any) -> list[Any]:
    """What a publication's terms MAC covers."""
    get = _getter(published)
    return [get("id"), get("trading_bot_id"), get("creator_wallet_address"),
            Decimal(get("profit_share_percent"))]


def share_fields(share: Any) -> list[Any]:
    """What a profit-share IOU's MAC covers."""
    get = _getter(share)
    return [get("id"), get("idempotency_key"), get("trade_id"), get("subscriber_bot_id"),
            get("published_bot_id"), get("subscriber_wallet_address"),
            get("creator_wallet_address"), Decimal(get("amount")), Decimal(get("realized_pnl")),
            Decimal(get("profit_share_percent"))]


def retry_fields(job: Any) -> list[Any]:
    """What a retry job's MAC covers (the flatten ticket too: it decides what the stop lets
    through)."""
    get = _getter(job)
    flatten = (get("webhook_payload") or {}).get("flatten") or {}
    return [get("id"), get("bot_id"), get("wallet_address"), get("market"), get("side"),
            Decimal(get("size")), bool(get("reduce_only")), int(get("sub_account_id")),
            get("signal_id"), flatten.get("stop_id"), flatten.get("scope")]


def _getter(row: Any) -> Any:
    """Field access for dataclasses and dicts alike."""
    if isinstance(row, Mapping):
        return row.__getitem__
    return lambda name: getattr(row, name)


# --- the one-time backfill ----------------------------------------------------------------------

_backfilled: set[str] = set()
_lock = threading.Lock()


def ensure_backfilled(db: Any, ring: ServerKeyRing, state_dir: str | Path | None) -> None:
    """Once per database and process: MAC the rows written before migration 0014.

    Runs only while `row_mac_backfill` says 'pending' and this daemon's STATE_DIR has no marker
    file; afterwards both say done, so a row whose MAC is set to NULL by SQL is refused rather
    than MAC'd. A bot's binding is MAC'd only if its policy MAC verifies; an IOU only if its
    amount is within percent x PnL.
    """
    dsn_key = str(getattr(db, "dsn", id(db)))
    if dsn_key in _backfilled:
        return
    with _lock:
        if dsn_key in _backfilled:
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
        _backfilled.add(dsn_key)


def _backfill(db: Any, ring: ServerKeyRing) -> dict[str, int]:
    """MAC every NULL-MAC row that existed before the migration (inside one transaction)."""
    from security.policy import BotPolicy, verify_policy_hmac

    counts = {BOT: 0, TERMS: 0, SHARE: 0, RETRY: 0}
    for bot in db.fetchall("SELECT * FROM trading_bots WHERE binding_mac IS NULL"):
        policy = BotPolicy(bot["id"], bot["market"], bot["leverage"], bot["max_position_size"])
        if verify_policy_hmac(ring.policy_keys(), policy, bot["policy_hmac"]).ok:
            db.execute("UPDATE trading_bots SET binding_mac = %s WHERE id = %s",
                       (sign(ring, BOT, bot_fields(bot)), bot["id"]))
            counts[BOT] += 1
    for pub in db.fetchall("SELECT * FROM published_bots WHERE terms_mac IS NULL"):
        db.execute("UPDATE published_bots SET terms_mac = %s WHERE id = %s",
                   (sign(ring, TERMS, terms_fields(pub)), pub["id"]))
        counts[TERMS] += 1
    for share in db.fetchall("SELECT * FROM pending_profit_shares WHERE share_mac IS NULL"
                             " AND status IN ('pending', 'sending')"):
        if within_share_cap(share["amount"], share["realized_pnl"],
                            share["profit_share_percent"]):
            db.execute("UPDATE pending_profit_shares SET share_mac = %s WHERE id = %s",
                       (sign(ring, SHARE, share_fields(share)), share["id"]))
            counts[SHARE] += 1
    for job in db.fetchall("SELECT * FROM trade_retry_queue WHERE job_mac IS NULL"
                           " AND status IN ('pending', 'running')"):
        db.execute("UPDATE trade_retry_queue SET job_mac = %s WHERE id = %s",
                   (sign(ring, RETRY, retry_fields(job)), job["id"]))
        counts[RETRY] += 1
    return counts


def within_share_cap(amount: Decimal, pnl: Decimal, percent: Decimal) -> bool:
    """An IOU may not exceed percent x realised PnL of its trade (and both must be positive)."""
    amount, pnl, percent = Decimal(amount), Decimal(pnl), Decimal(percent)
    return amount > 0 and pnl > 0 and 0 < percent <= 100 and amount * 100 <= pnl * percent


# --- bot bindings -------------------------------------------------------------------------------


_BOT_FENCE = (" AND wallet_address = %s AND market = %s AND market_index = %s"
              " AND drift_subaccount_id = %s AND leverage = %s AND max_position_size = %s"
              " AND source_published_bot_id IS NOT DISTINCT FROM %s")


def seal_bot(db: Any, ring: ServerKeyRing, bot_id: str) -> bool:
    """MAC a bot's binding over its row as stored now; call right where those fields are
    written (bot create, subscribe, a sub-account move), never on a row read back later."""
    row = db.fetchone("SELECT * FROM trading_bots WHERE id = %s", (bot_id,))
    if row is None:
        return False
    return db.execute("UPDATE trading_bots SET binding_mac = %s WHERE id = %s",
                      (sign(ring, BOT, bot_fields(row)), bot_id)) == 1


def check_bot_binding(db: Any, ring: ServerKeyRing, bot: Any) -> str | None:
    """None if the bot's binding MAC covers these exact values, else the refusal reason.

    The caller has verified the bot's policy MAC first (the transitional seal relies on it)."""
    row = db.fetchone("SELECT binding_mac FROM trading_bots WHERE id = %s", (bot.id,))
    if row is None:
        return "bot_missing"
    fields = bot_fields(bot)
    stored = row["binding_mac"]
    if stored is None:  # every writer seals (bot create, subscribe, a sub-account move)
        return f"{BOT}_mac_missing"
    verdict = check(ring, BOT, fields, stored)
    if not verdict.ok:
        return verdict.reason
    if verdict.needs_resign:
        _swap_bot_mac(db, bot, stored, sign(ring, BOT, fields))
    return None


def _swap_bot_mac(db: Any, bot: Any, old: str | None, new: str) -> bool:
    """Compare-and-swap the binding MAC while every covered field is as given."""
    return db.execute(
        "UPDATE trading_bots SET binding_mac = %s WHERE id = %s"
        " AND binding_mac IS NOT DISTINCT FROM %s" + _BOT_FENCE,
        (new, bot.id, old, bot.wallet_address, bot.market, bot.market_index,
         bot.drift_subaccount_id, bot.leverage, bot.max_position_size,
         bot.source_published_bot_id)) == 1


# --- rotation -----------------------------------------------------------------------------------

_TABLES = {  # kind -> (table, MAC column, the rows' fields)
    BOT: ("trading_bots", "binding_mac", bot_fields),
    TERMS: ("published_bots", "terms_mac", terms_fields),
    SHARE: ("pending_profit_shares", "share_mac", share_fields),
    RETRY: ("trade_retry_queue", "job_mac", retry_fields),
}


def reseal_all(db: Any, ring: ServerKeyRing) -> dict[str, dict[str, int]]:
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
            elif db.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s AND {column} = %s",
                            (sign(ring, kind, fields_of(row)), row["id"], row[column])) == 1:
                counts["moved"] += 1
        report[kind] = counts
    return report


def mac_key_ids_in_use(db: Any) -> dict[str, int]:
    """How many row MACs name each server key id (an old key is removable when absent)."""
    found: dict[str, int] = {}
    for table, column, _fields in _TABLES.values():
        for row in db.fetchall(f"SELECT split_part({column}, '.', 2) AS key_id, count(*) AS n"
                               f" FROM {table} WHERE {column} IS NOT NULL GROUP BY 1"):
            found[row["key_id"]] = found.get(row["key_id"], 0) + int(row["n"])
    return found
