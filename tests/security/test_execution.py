"""umk_for_bot sealing (per bot) and the execution authorization checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from security.errors import EnvelopeAuthFailed, EnvelopeError
from security.execution import (
    ExecutionAuthorization,
    ExecutionStatus,
    check_execution,
    open_umk_for_bot,
    seal_umk_for_bot,
    sign_execution_grant,
    verify_execution_grant,
)
from security.key_hierarchy import derive_subkeys, derive_umk, umk_message
from tests.security.helpers import OTHER_SEED, ring, subkeys, wallet

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _umk():
    kp, address = wallet()
    return derive_umk(address, bytes(kp.sign_message(umk_message(address))))


def test_umk_for_bot_round_trip_gives_same_subkeys() -> None:
    umk = _umk()
    sealed = seal_umk_for_bot(ring(), umk, "bot-1")
    opened = open_umk_for_bot(ring(), umk.wallet_address, "bot-1", sealed)
    assert opened == umk
    assert derive_subkeys(opened) == derive_subkeys(umk)


def test_umk_for_bot_refuses_other_bot() -> None:
    umk = _umk()
    sealed = seal_umk_for_bot(ring(), umk, "bot-1")
    for other in ("bot-2", "bot-10", "bot-", "Bot-1"):
        with pytest.raises(EnvelopeError):
            open_umk_for_bot(ring(), umk.wallet_address, other, sealed)


def test_umk_for_bot_refuses_other_wallet() -> None:
    umk = _umk()
    sealed = seal_umk_for_bot(ring(), umk, "bot-1")
    with pytest.raises(EnvelopeAuthFailed):
        open_umk_for_bot(ring(), wallet(OTHER_SEED)[1], "bot-1", sealed)


def _auth(**changes: object) -> ExecutionAuthorization:
    base = ExecutionAuthorization(
        bot_id="bot-1",
        wallet_address=wallet()[1],
        execution_active=True,
        expires_at=NOW + timedelta(hours=1),
    )
    return replace(base, **changes)


def test_check_execution_states() -> None:
    assert check_execution(_auth(), NOW) is ExecutionStatus.ALLOWED
    assert check_execution(_auth(expires_at=None), NOW) is ExecutionStatus.ALLOWED
    assert check_execution(_auth(execution_active=False), NOW) is ExecutionStatus.AUTH_DISABLED
    assert check_execution(_auth(expires_at=NOW), NOW) is ExecutionStatus.AUTH_EXPIRED
    expired = _auth(expires_at=NOW - timedelta(seconds=1))
    assert check_execution(expired, NOW) is ExecutionStatus.AUTH_EXPIRED
    disabled_and_expired = _auth(execution_active=False, expires_at=NOW - timedelta(days=1))
    assert check_execution(disabled_and_expired, NOW) is ExecutionStatus.AUTH_DISABLED
    assert ExecutionStatus.AUTH_EXPIRED.value == "auth_expired"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        check_execution(_auth(), NOW.replace(tzinfo=None))


def test_grant_mac_round_trip_and_tamper() -> None:
    keys = subkeys()
    auth = _auth()
    auth = replace(auth, grant_mac=sign_execution_grant(keys, auth.bot_id, auth.expires_at))
    assert verify_execution_grant(keys, auth)
    assert not verify_execution_grant(keys, replace(auth, expires_at=NOW + timedelta(days=9)))
    assert not verify_execution_grant(keys, replace(auth, expires_at=None))
    assert not verify_execution_grant(keys, replace(auth, bot_id="bot-2"))
    assert not verify_execution_grant(keys, replace(auth, grant_mac=None))
    assert not verify_execution_grant(subkeys(OTHER_SEED), auth)


def test_grant_expiry_is_timezone_independent() -> None:
    keys = subkeys()
    cet = NOW.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert sign_execution_grant(keys, "b", NOW) == sign_execution_grant(keys, "b", cet)
