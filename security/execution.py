"""Execution while the user is away: the bot's sealed UMK and its authorization.

Decision — umk_encrypted_for_bot is sealed under the *server key ring*, not under key_execution.
key_execution is derived from the UMK, so a UMK sealed under it could only be opened by someone
who already has the UMK: useless for signing while the user is away. The server key ring seals
with a per-purpose key HKDF(server_key, "... server-seal\\n" + "umk_for_bot:<bot_id>"), and the
associated data binds wallet and purpose; a bot's sealed UMK therefore fails to open for any
other bot, and a copy into another wallet's row fails too. The server key rotates with the ring.

key_execution has a role of its own: it MACs the user's execution grant (bot, wallet, expiry).
The grant is written while the user is present (UMK live) and re-checked after the server has
opened the UMK, so a database edit that extends expiry or moves a grant to another bot is
refused even though the server could open the UMK.

Revocation: disabling execution must also delete the bot's sealed UMK; without it the server
cannot reach the agent key, whatever the flags say.

`check_execution` runs before any decryption (the routing trigger points: an auth-disabled or
auth-expired bot still routes the signal to subscribers, then answers 403).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from security.envelope import Binding, purpose_umk_for_bot
from security.errors import EnvelopeMalformed
from security.key_hierarchy import SubKeys, UserMasterKey, umk_from_bytes
from security.server_key import ServerKeyRing

_GRANT_DOMAIN = b"QuantumVault v1 execution-grant\x00"
GRANT_PREFIX = "v1."


def umk_binding(wallet_address: str, bot_id: str | int) -> Binding:
    """The binding (AD) of one bot's sealed UMK."""
    return Binding(wallet_address, purpose_umk_for_bot(bot_id))


def seal_umk_for_bot(ring: ServerKeyRing, umk: UserMasterKey, bot_id: str | int) -> str:
    """Seal the UMK for one bot so it can sign while its user is away."""
    return ring.seal(umk.key, umk_binding(umk.wallet_address, bot_id))


def open_umk_for_bot(
    ring: ServerKeyRing, wallet_address: str, bot_id: str | int, envelope: str
) -> UserMasterKey:
    """Open a bot's sealed UMK; refuses (EnvelopeError) for any other bot or wallet."""
    raw = ring.open(envelope, umk_binding(wallet_address, bot_id))
    return umk_from_bytes(wallet_address, raw)


class ExecutionStatus(enum.Enum):
    """Outcome of the pre-decryption authorization check (the routing trigger points)."""

    ALLOWED = "allowed"
    AUTH_DISABLED = "auth_disabled"
    AUTH_EXPIRED = "auth_expired"


@dataclass(frozen=True)
class ExecutionAuthorization:
    """A bot's execution authorization as stored: flag, optional expiry (aware UTC), MAC."""

    bot_id: str
    wallet_address: str
    execution_active: bool
    expires_at: datetime | None
    grant_mac: str | None = None


def check_execution(auth: ExecutionAuthorization, now: datetime) -> ExecutionStatus:
    """Allowed, auth_disabled or auth_expired; pure, no keys needed (expiry is exclusive)."""
    if not auth.execution_active:
        return ExecutionStatus.AUTH_DISABLED
    if auth.expires_at is not None:
        if auth.expires_at.tzinfo is None or now.tzinfo is None:
            raise ValueError("expires_at and now must be timezone-aware")
        if now >= auth.expires_at:
            return ExecutionStatus.AUTH_EXPIRED
    return ExecutionStatus.ALLOWED


def _grant_message(bot_id: str, wallet_address: str, expires_at: datetime | None) -> bytes:
    """Length-prefixed canonical bytes of a grant; expiry as integer epoch microseconds."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    expiry = b"never" if expires_at is None else str(_epoch_us(expires_at)).encode("ascii")
    parts = [bot_id.encode("utf-8"), wallet_address.encode("ascii"), expiry]
    return _GRANT_DOMAIN + b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _epoch_us(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (no float rounding)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def sign_execution_grant(
    subkeys: SubKeys, bot_id: str, expires_at: datetime | None
) -> str:
    """MAC a grant with key_execution while the user is present; store it as grant_mac."""
    msg = _grant_message(bot_id, subkeys.wallet_address, expires_at)
    return GRANT_PREFIX + hmac.new(subkeys.key_execution, msg, hashlib.sha256).hexdigest()


def verify_execution_grant(subkeys: SubKeys, auth: ExecutionAuthorization) -> bool:
    """True only if the stored grant MAC matches bot, wallet and expiry (constant time)."""
    if auth.grant_mac is None or subkeys.wallet_address != auth.wallet_address:
        return False
    expected = sign_execution_grant(subkeys, auth.bot_id, auth.expires_at)
    return hmac.compare_digest(expected.encode("ascii"), auth.grant_mac.encode("utf-8"))


# --- stored execution grants: the sealed UMK with its expiry -----------------------------------

_GRANT_MAGIC = b"QVG1"
GRANT_MAX_HOURS = 30 * 24
GRANT_DEFAULT_HOURS = 24


@dataclass(frozen=True)
class OpenedGrant:
    """A grant opened by the server: the bot's UMK and the expiry sealed with it."""

    umk: UserMasterKey
    expires_at: datetime


def seal_grant(ring: ServerKeyRing, umk: UserMasterKey, bot_id: str | int,
               expires_at: datetime) -> str:
    """Seal UMK and expiry together under the server key, bound to bot and wallet (AD).

    The expiry inside the envelope is authenticated by the server key: a database edit of
    `execution_expires_at` cannot extend a grant. The purpose stays "umk_for_bot:<bot_id>" so
    `keys reencrypt` rotates grants like any sealed UMK (it never looks at the plaintext).
    """
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    plaintext = _GRANT_MAGIC + umk.key + struct.pack(">q", _epoch_us(expires_at))
    return ring.seal(plaintext, umk_binding(umk.wallet_address, bot_id))


def open_grant(ring: ServerKeyRing, wallet_address: str, bot_id: str | int,
               envelope: str) -> OpenedGrant:
    """Open a stored grant; EnvelopeError for another bot/wallet, a tamper or an old format."""
    raw = ring.open(envelope, umk_binding(wallet_address, bot_id))
    if len(raw) != len(_GRANT_MAGIC) + 32 + 8 or not raw.startswith(_GRANT_MAGIC):
        raise EnvelopeMalformed("sealed UMK is not an execution grant (no sealed expiry)")
    (micros,) = struct.unpack(">q", raw[-8:])
    expires = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    return OpenedGrant(umk_from_bytes(wallet_address, raw[4:36]), expires)
