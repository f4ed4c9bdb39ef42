"""The one place a bot's signing (agent) key is opened; every signing path calls it.

Paths that sign for a bot: its own orders (webhook, manual), subscriber copies, retries,
flatten, and profit-share payments of a subscriber bot. Each calls `open_bot_signing_key` (or
`BotContext.keypair`, which does) right before it needs the key, so a revocation or an expiry
applies to the next signature, never to the next actor restart.

A V3 wallet (agent key sealed under the owner's UMK) signs only through the bot's execution
grant: the UMK sealed with its expiry under the server key, bound to bot and wallet
(security.execution.seal_grant), plus the owner's key_execution MAC over (bot, wallet, expiry).
Missing, revoked, expired, tampered or moved: refused with a fixed reason; there is no fallback
to the server key, even if a server-key copy of the agent key is still stored.

A legacy wallet (agent key sealed only under the server key) signs with that envelope while
LEGACY_KEY_PATH=on; with off it signs nothing. A legacy bot that nevertheless carries a sealed
UMK keeps today's behaviour: its execution authorization must be active and unexpired.

`signing_refusal` is the pre-decryption check the signal flow's trigger points use (no key is
opened); `open_bot_signing_key` repeats it and then opens the key. Refusals raise
`SigningRefused(reason)`; the caller records it (signal outcome, retry reason) and the counted
metric is `signing_refusals_total{reason, origin}`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from solders.keypair import Keypair

from observability.trading_metrics import (
    GRANT_MIN_SECONDS_LEFT_WITH_POSITION,
    GRANTS_LAPSED_WITH_POSITION,
    SIGNING_REFUSALS,
)
from security.agent_keys import open_agent_privkey, open_agent_privkey_legacy
from security.errors import InvalidKeyMaterial, SecurityError
from security.execution import (
    ExecutionAuthorization,
    ExecutionStatus,
    check_execution,
    open_grant,
    verify_execution_grant,
)
from security.key_hierarchy import derive_subkeys
from security.log_redaction import register_agent_keypair
from security.server_key import ServerKeyRing
from storage.bots import GrantRow, v3_grant_states
from storage.database import Database
from storage.wallets import SigningRows, WalletKeys, signing_rows

log = logging.getLogger(__name__)

AUTH_DISABLED = "auth_disabled"
AUTH_EXPIRED = "auth_expired"
GRANT_INVALID = "grant_invalid"
LEGACY_OFF = "legacy_key_path_off"
NO_AGENT_KEY = "no_agent_key"
AGENT_KEY_MISMATCH = "agent_key_mismatch"
GRANT_UNAVAILABLE = "grant_unavailable"  # the rows could not be read: fail closed


class SigningRefused(SecurityError):
    """No signature may be made for this bot now; `reason` is a fixed label."""

    def __init__(self, reason: str) -> None:
        """Keep the reason as attribute and message (no key material in either)."""
        super().__init__(f"signing refused: {reason}")
        self.reason = reason


def legacy_path_on(settings: Any) -> bool:
    """LEGACY_KEY_PATH=on (the default): legacy wallets may still sign."""
    try:
        return str(settings.legacy_key_path) != "off"
    except KeyError:
        return True


def grant_refusal(wallet: WalletKeys, grant: GrantRow, now: datetime, *,
                  legacy_allowed: bool) -> str | None:
    """Why this bot may not sign now, from the rows alone (no decryption), or None."""
    if wallet.v3_envelope is None:  # legacy wallet
        if wallet.legacy_envelope is None:
            return NO_AGENT_KEY
        if not legacy_allowed:
            return LEGACY_OFF
        if grant.envelope is None:
            return None
    elif grant.envelope is None or grant.grant_mac is None:
        return AUTH_DISABLED
    elif grant.expires_at is None:
        return GRANT_INVALID  # every V3 grant has an expiry; none means the row was edited
    status = check_execution(ExecutionAuthorization(
        grant.bot_id, wallet.address, grant.execution_active, grant.expires_at), now)
    return None if status is ExecutionStatus.ALLOWED else status.value


def open_signing_secret(ring: ServerKeyRing, wallet: WalletKeys, grant: GrantRow,
                        now: datetime, *, legacy_allowed: bool) -> bytes:
    """The agent's 64-byte keypair, or SigningRefused; V3 never falls back to the server key."""
    reason = grant_refusal(wallet, grant, now, legacy_allowed=legacy_allowed)
    if reason is not None:
        raise SigningRefused(reason)
    if wallet.v3_envelope is None:
        assert wallet.legacy_envelope is not None
        try:
            secret = open_agent_privkey_legacy(ring, wallet.address, wallet.legacy_envelope)
        except SecurityError:
            raise SigningRefused(NO_AGENT_KEY) from None
    else:
        secret = _open_through_grant(ring, wallet, grant, now)
    try:
        keypair = Keypair.from_bytes(secret)
    except (ValueError, TypeError):
        raise SigningRefused(NO_AGENT_KEY) from None
    if str(keypair.pubkey()) != wallet.agent_public_key:
        raise SigningRefused(AGENT_KEY_MISMATCH)
    return secret


def _open_through_grant(ring: ServerKeyRing, wallet: WalletKeys, grant: GrantRow,
                        now: datetime) -> bytes:
    """UMK from the sealed grant, its sealed expiry and MAC checked, then the V3 agent key."""
    assert grant.envelope is not None and wallet.v3_envelope is not None
    try:
        opened = open_grant(ring, wallet.address, grant.bot_id, grant.envelope)
    except (SecurityError, ValueError):
        raise SigningRefused(GRANT_INVALID) from None
    if grant.expires_at is None or opened.expires_at != grant.expires_at:
        raise SigningRefused(GRANT_INVALID)  # the stored expiry was edited
    if now >= opened.expires_at:
        raise SigningRefused(AUTH_EXPIRED)
    subkeys = derive_subkeys(opened.umk)
    auth = ExecutionAuthorization(grant.bot_id, wallet.address, grant.execution_active,
                                  opened.expires_at, grant.grant_mac)
    if not verify_execution_grant(subkeys, auth):
        raise SigningRefused(GRANT_INVALID)
    try:
        return open_agent_privkey(subkeys, wallet.v3_envelope)
    except (SecurityError, InvalidKeyMaterial):
        raise SigningRefused(GRANT_INVALID) from None


def _rows(db: Database, bot_id: str,
          rows: SigningRows | None = None) -> tuple[WalletKeys, GrantRow]:
    """The bot's grant and its wallet's envelopes, read fresh (or as just read with the
    caller's claim); refusal if either is missing."""
    try:
        grant, wallet = rows if rows is not None else signing_rows(db, bot_id)
    except Exception as exc:  # fail closed: an unreadable grant is no grant
        log.error("signing key rows unreadable (%s)", type(exc).__name__,
                  extra={"bot_id": bot_id})
        raise SigningRefused(GRANT_UNAVAILABLE) from None
    if grant is None or wallet is None:
        raise SigningRefused(NO_AGENT_KEY)
    return wallet, grant


def _count(reason: str, origin: str, bot_id: str) -> None:
    """Count and log one refusal (fixed labels only)."""
    SIGNING_REFUSALS.labels(reason=reason, origin=origin).inc()
    log.warning("signing refused for the bot: %s (%s)", reason, origin,
                extra={"bot_id": bot_id})


def signing_refusal(db: Database, bot_id: str, *, legacy_allowed: bool, origin: str,
                    now: datetime | None = None) -> str | None:
    """Pre-decryption check of the trigger points: the counted refusal reason, or None."""
    try:
        wallet, grant = _rows(db, bot_id)
        reason = grant_refusal(wallet, grant, now or datetime.now(UTC),
                               legacy_allowed=legacy_allowed)
    except SigningRefused as exc:
        reason = exc.reason
    if reason is not None:
        _count(reason, origin, bot_id)
    return reason


def open_bot_signing_key(db: Database, ring: ServerKeyRing, bot_id: str, *,
                         legacy_allowed: bool, origin: str,
                         now: datetime | None = None, rows: SigningRows | None = None) -> bytes:
    """The bot's agent keypair (64 bytes) for one signing path, or SigningRefused (counted).

    Call it right before signing (not once per process): it re-reads the grant, so a
    revocation or an expiry stops the very next signature. `rows`: the grant and envelopes as
    the caller read them right before (a claimed signal's, read by its claim), instead of a
    read of its own.
    """
    try:
        wallet, grant = _rows(db, bot_id, rows)
        return open_signing_secret(ring, wallet, grant, now or datetime.now(UTC),
                                   legacy_allowed=legacy_allowed)
    except SigningRefused as exc:
        _count(exc.reason, origin, bot_id)
        raise


def open_bot_keypair(db: Database, ring: ServerKeyRing, settings: Any, bot_id: str, *,
                     origin: str) -> Keypair:
    """`open_bot_signing_key` as a solders Keypair, registered with the log redaction filter
    (the function profit-share payments and other signers outside a BotContext call)."""
    secret = open_bot_signing_key(db, ring, bot_id, legacy_allowed=legacy_path_on(settings),
                                  origin=origin)
    register_agent_keypair(secret)
    return Keypair.from_bytes(secret)


def grant_exposure(db: Database) -> tuple[int, float, list[dict[str, Any]]]:
    """(V3 bots holding a position with no usable grant, shortest grant life left among those
    holding one, the lapsed bots' rows): what `bot status` shows and the gauges export."""
    lapsed: list[dict[str, Any]] = []
    shortest = float("inf")
    for row in v3_grant_states(db):
        if not row["net_position"]:
            continue
        if row["granted"]:
            shortest = min(shortest, float(row["seconds_left"]))
        else:
            lapsed.append(row)
    return len(lapsed), shortest, lapsed


def watch_grants(db: Database) -> None:
    """Compute the grant gauges from `db` at every scrape (a lapse needs no signal to show)."""
    def lapsed() -> float:
        try:
            return float(grant_exposure(db)[0])
        except Exception:  # an unreadable database must not break the scrape
            return float("nan")

    def shortest() -> float:
        try:
            return grant_exposure(db)[1]
        except Exception:
            return float("nan")

    GRANTS_LAPSED_WITH_POSITION.set_function(lapsed)
    GRANT_MIN_SECONDS_LEFT_WITH_POSITION.set_function(shortest)
