"""The one signing-key opener: V3 only through an unexpired grant, legacy only while allowed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from solders.keypair import Keypair

from custody.signing_keys import SigningRefused, grant_refusal, open_signing_secret
from security.agent_keys import seal_agent_privkey, seal_agent_privkey_legacy
from security.execution import open_grant, seal_grant, seal_umk_for_bot, sign_execution_grant
from security.key_hierarchy import derive_subkeys, derive_umk, umk_message
from storage.bots import GrantRow
from storage.wallets import WalletKeys
from tests.security.helpers import OTHER_SEED, ring, wallet

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
BOT = "bot-1"
AGENT = Keypair.from_seed(bytes(range(200, 232)))


def _owner(seed: bytes | None = None) -> tuple[str, bytes]:
    """An owner address and its real signature of the UMK message."""
    kp, address = wallet(seed) if seed else wallet()
    return address, bytes(kp.sign_message(umk_message(address)))


def _v3(expires: datetime = NOW + timedelta(hours=24), bot: str = BOT,
        seed: bytes | None = None) -> tuple[WalletKeys, GrantRow]:
    """A V3 wallet (no server-key copy) and a valid grant for `bot` until `expires`."""
    address, signature = _owner(seed)
    umk = derive_umk(address, signature)
    subkeys = derive_subkeys(umk)
    keys = WalletKeys(address, str(AGENT.pubkey()), None, seal_agent_privkey(subkeys, bytes(AGENT)))
    grant = GrantRow(bot, address, True, expires, seal_grant(ring(), umk, bot, expires),
                     sign_execution_grant(subkeys, bot, expires))
    return keys, grant


def _reason(keys: WalletKeys, grant: GrantRow, legacy: bool = True) -> str:
    with pytest.raises(SigningRefused) as refused:
        open_signing_secret(ring(), keys, grant, NOW, legacy_allowed=legacy)
    return refused.value.reason


def test_a_v3_wallet_signs_through_a_valid_grant() -> None:
    keys, grant = _v3()
    assert grant_refusal(keys, grant, NOW, legacy_allowed=False) is None
    assert open_signing_secret(ring(), keys, grant, NOW, legacy_allowed=False) == bytes(AGENT)
    opened = open_grant(ring(), keys.address, BOT, grant.envelope or "")
    assert opened.expires_at == grant.expires_at


def test_missing_revoked_or_expired_grants_refuse_and_never_use_a_server_key_copy() -> None:
    keys, grant = _v3()
    with_copy = replace(keys, legacy_envelope=seal_agent_privkey_legacy(ring(), keys.address,
                                                                        bytes(AGENT)))
    assert _reason(with_copy, replace(grant, envelope=None, grant_mac=None)) == "auth_disabled"
    assert _reason(with_copy, replace(grant, execution_active=False)) == "auth_disabled"
    expired_keys, expired = _v3(expires=NOW - timedelta(seconds=1))
    assert _reason(expired_keys, expired) == "auth_expired"
    assert _reason(keys, replace(grant, expires_at=None)) == "grant_invalid"


def test_database_edits_of_a_grant_are_refused() -> None:
    keys, grant = _v3()
    later = grant.expires_at + timedelta(days=300)  # type: ignore[operator]
    assert _reason(keys, replace(grant, expires_at=later)) == "grant_invalid"
    _, other_bot = _v3(bot="bot-2")  # a grant copied from another bot of the same wallet
    assert _reason(keys, replace(other_bot, bot_id=BOT)) == "grant_invalid"
    assert _reason(keys, replace(grant, grant_mac="v1." + "00" * 32)) == "grant_invalid"
    assert _reason(keys, replace(grant, envelope=grant.envelope[:-4] + "AAAA")) == "grant_invalid"
    umk_only = seal_umk_for_bot(ring(), derive_umk(*_owner()), BOT)  # no sealed expiry
    assert _reason(keys, replace(grant, envelope=umk_only)) == "grant_invalid"
    other_keys, _ = _v3(seed=OTHER_SEED)  # another owner's agent envelope under this grant
    assert _reason(replace(keys, v3_envelope=other_keys.v3_envelope), grant) == "grant_invalid"


def test_an_agent_key_that_is_not_the_wallets_agent_is_refused() -> None:
    keys, grant = _v3()
    assert _reason(replace(keys, agent_public_key=str(Keypair().pubkey())),
                   grant) == "agent_key_mismatch"


def test_legacy_wallets_sign_only_while_the_legacy_path_is_on() -> None:
    address, _ = _owner()
    keys = WalletKeys(address, str(AGENT.pubkey()),
                      seal_agent_privkey_legacy(ring(), address, bytes(AGENT)), None)
    grant = GrantRow(BOT, address, False, None, None, None)
    assert open_signing_secret(ring(), keys, grant, NOW, legacy_allowed=True) == bytes(AGENT)
    assert _reason(keys, grant, legacy=False) == "legacy_key_path_off"
    placeholder = replace(grant, envelope="sealed-umk")  # today's UMK-path authorization holds
    assert _reason(keys, placeholder) == "auth_disabled"
    assert _reason(replace(keys, legacy_envelope=None), grant) == "no_agent_key"


def test_refusals_carry_no_key_material() -> None:
    keys, grant = _v3()
    with pytest.raises(SigningRefused) as refused:
        open_signing_secret(ring(), keys, replace(grant, grant_mac="x"), NOW,
                            legacy_allowed=True)
    text = f"{refused.value!r} {refused.value} {keys!r} {grant!r}"
    assert bytes(AGENT).hex() not in text and (grant.envelope or "") not in text
    assert (keys.v3_envelope or "") not in text
