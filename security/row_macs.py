"""MACs of the rows that move money: bot bindings, publication terms, profit-share IOUs, retries.

Each MAC is HMAC-SHA256 under the policy key of one server key (`ServerKeyRing.policy_keys()`,
as the policy MAC), over a per-kind domain tag and the row's fields, each as a 4-byte
big-endian length plus UTF-8 bytes; numbers go through `security.policy.canonical_decimal`
(signed values carry their sign in front). Stored as "v1.<key_id>.<64 hex>". A MAC that
verifies under an older key is re-signed under the current one on use (compare-and-swap), as
the policy MAC is. The row id is always inside the MAC, so a MAC copied onto another row fails.

Pure functions only: reading, sealing, backfilling and re-sealing the stored MACs is in
storage.row_mac_rows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from security.policy import canonical_decimal
from security.server_key import ServerKeyRing

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


# --- the IOU cap --------------------------------------------------------------------------------


def within_share_cap(amount: Decimal, pnl: Decimal, percent: Decimal) -> bool:
    """An IOU may not exceed percent x realised PnL of its trade (and both must be positive)."""
    amount, pnl, percent = Decimal(amount), Decimal(pnl), Decimal(percent)
    return amount > 0 and pnl > 0 and 0 < percent <= 100 and amount * 100 <= pnl * percent
