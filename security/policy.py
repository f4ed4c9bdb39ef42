"""Policy HMAC: a bot's trading limits are authenticated so an edited database row is refused.

MAC = HMAC-SHA256(policy_key, canonical(bot_id, market, leverage, max_position_size)), stored as
"v1.<key_id>.<64 hex>". The key id names the server key the policy key was derived from
(`ServerKeyRing.policy_keys()`), so a server-key rotation re-signs lazily or in bulk while old
MACs still verify. The bot id is inside the MAC so a policy row copied to another bot fails.

Canonical encoding: a domain tag, then each field as a 4-byte big-endian length plus UTF-8
bytes, in fixed order. Numbers go through Decimal and are printed in plain positional notation
with no exponent and no trailing zeros ("2.50" -> "2.5", "1E+2" -> "100", "-0" -> "0"), so the
same value always encodes the same way whatever type storage hands back (int, Decimal, str).
NaN, infinities, negatives and booleans are refused rather than encoded.

A missing MAC is refused by default; allowing it while existing rows are migrated is opt-in
(`allow_missing`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from security.errors import PolicyRefused

_DOMAIN = b"QuantumVault v1 policy\x00"
_STORED_RE = re.compile(r"^v1\.([A-Za-z0-9._:\-]{1,64})\.([0-9a-f]{64})\Z")

REASON_MISSING = "policy_hmac_missing"
REASON_MALFORMED = "policy_hmac_malformed"
REASON_UNKNOWN_VERSION = "policy_hmac_unknown_version"
REASON_UNKNOWN_KEY = "policy_hmac_unknown_key"
REASON_MISMATCH = "policy_hmac_mismatch"
REASON_INVALID_FIELD = "policy_invalid_field"


@dataclass(frozen=True)
class BotPolicy:
    """The authenticated fields of one bot's trading policy."""

    bot_id: str | int
    market: str
    leverage: Decimal | int | str
    max_position_size: Decimal | int | str


@dataclass(frozen=True)
class PolicyCheck:
    """Verdict: ok, or a refusal reason usable as DB record text and as a metric label."""

    ok: bool
    reason: str | None = None
    key_id: str | None = None
    needs_resign: bool = False


def canonical_decimal(value: Decimal | int | str) -> str:
    """Stable positional decimal text; refuses floats, bools, NaN, infinities and negatives."""
    if isinstance(value, (bool, float)):
        raise ValueError("policy numbers must be Decimal, int or str (not float or bool)")
    try:
        dec = Decimal(value) if not isinstance(value, str) else Decimal(value.strip())
    except (InvalidOperation, TypeError) as exc:
        raise ValueError("policy number is not a decimal") from exc
    if not dec.is_finite():
        raise ValueError("policy number must be finite")
    if dec.is_zero():
        return "0"
    if dec < 0:
        raise ValueError("policy number must not be negative")
    if not -30 <= dec.adjusted() <= 30:
        raise ValueError("policy number is out of range")
    text = format(dec, "f")  # exact, never rounded (normalize() would round to 28 digits)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def canonical_policy(policy: BotPolicy) -> bytes:
    """The exact bytes the policy MAC covers."""
    if not isinstance(policy.market, str) or not policy.market:
        raise ValueError("policy market must be a non-empty string")
    bot_id = policy.bot_id
    if isinstance(bot_id, bool) or not isinstance(bot_id, (str, int)) or str(bot_id) == "":
        raise ValueError("policy bot id must be a non-empty str or an int")
    fields = [
        str(bot_id),
        policy.market,
        canonical_decimal(policy.leverage),
        canonical_decimal(policy.max_position_size),
    ]
    return _DOMAIN + b"".join(
        struct.pack(">I", len(raw)) + raw for raw in (f.encode("utf-8") for f in fields)
    )


def compute_policy_hmac(key: bytes, key_id: str, policy: BotPolicy) -> str:
    """Sign a policy; store the returned "v1.<key_id>.<hex>" next to the bot."""
    if not re.fullmatch(r"[A-Za-z0-9._:\-]{1,64}", key_id):
        raise ValueError("key id must match [A-Za-z0-9._:-]{1,64}")
    digest = hmac.new(key, canonical_policy(policy), hashlib.sha256).hexdigest()
    return f"v1.{key_id}.{digest}"


def verify_policy_hmac(
    keys: Mapping[str, bytes],
    policy: BotPolicy,
    stored: str | None,
    *,
    current_key_id: str | None = None,
    allow_missing: bool = False,
) -> PolicyCheck:
    """Check a stored policy MAC in constant time; never raises on bad data, refuses instead."""
    if not stored:
        return PolicyCheck(ok=allow_missing, reason=None if allow_missing else REASON_MISSING)
    if not stored.startswith("v1."):
        reason = REASON_UNKNOWN_VERSION if re.match(r"^v\d+\.", stored) else REASON_MALFORMED
        return PolicyCheck(ok=False, reason=reason)
    match = _STORED_RE.match(stored)
    if match is None:
        return PolicyCheck(ok=False, reason=REASON_MALFORMED)
    key_id, digest = match.group(1), match.group(2)
    key = keys.get(key_id)
    if key is None:
        return PolicyCheck(ok=False, reason=REASON_UNKNOWN_KEY, key_id=key_id)
    try:
        message = canonical_policy(policy)
    except ValueError:
        return PolicyCheck(ok=False, reason=REASON_INVALID_FIELD, key_id=key_id)
    expected = hmac.new(key, message, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, bytes.fromhex(digest)):
        return PolicyCheck(ok=False, reason=REASON_MISMATCH, key_id=key_id)
    stale = current_key_id is not None and key_id != current_key_id
    return PolicyCheck(ok=True, key_id=key_id, needs_resign=stale)


def resign_policy_hmac(
    keys: Mapping[str, bytes], current_key_id: str, policy: BotPolicy, stored: str | None
) -> str:
    """Rotation: re-sign under the current key only after the old MAC verifies.

    Refuses (PolicyRefused) a row that does not verify, so a rotation never launders an edited
    policy into a freshly signed one. Returns `stored` unchanged if it is already current.
    """
    if not stored:
        raise PolicyRefused(REASON_MISSING)
    check = verify_policy_hmac(keys, policy, stored, current_key_id=current_key_id)
    if not check.ok:
        raise PolicyRefused(check.reason or REASON_MISMATCH)
    if not check.needs_resign:
        return stored
    return compute_policy_hmac(keys[current_key_id], current_key_id, policy)
