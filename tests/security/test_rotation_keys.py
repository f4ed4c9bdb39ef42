"""Key rotation without a database: bound webhook hashes, previous and retired keys."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from config import load_settings
from security.envelope import Binding
from security.errors import EnvelopeAuthFailed, ServerKeyError
from security.keyring_config import server_key_ring
from security.policy import BotPolicy, compute_policy_hmac, verify_policy_hmac
from security.server_key import RetiredKeyId, ServerKeyRing
from security.webhook_auth import (
    authenticate_webhook,
    generate_webhook_secret,
    hash_bound_webhook_secret,
    hash_webhook_secret,
    issue_bound_webhook_secret,
    reseal_bound_hash,
    stored_hash_key_id,
    stored_hash_version,
)
from tests.security.helpers import SERVER_KEY_NEW, SERVER_KEY_OLD, ring

BOT, OTHER = "bot-a", "bot-b"


def rotated(retire_old: bool = False) -> ServerKeyRing:
    """k-new current, k-old previous (or retired)."""
    keys = {"k-old": SERVER_KEY_OLD, "k-new": SERVER_KEY_NEW}
    return ServerKeyRing(keys, "k-new", {"k-old"} if retire_old else ())


def test_a_bound_hash_authenticates_its_bot_only() -> None:
    issued = issue_bound_webhook_secret(ring(), BOT)
    assert stored_hash_version(issued.stored_hash) == "v2"
    assert stored_hash_key_id(issued.stored_hash) == "k-old"
    assert issued.secret not in issued.stored_hash and issued.secret not in repr(issued)
    ok = authenticate_webhook(ring(), BOT, issued.secret, issued.stored_hash)
    assert ok.ok and not ok.needs_rehash and ok.rehashed is None
    copied = authenticate_webhook(ring(), OTHER, issued.secret, issued.stored_hash)
    assert (copied.ok, copied.reason) == (False, "webhook_secret_mismatch")
    wrong = authenticate_webhook(ring(), BOT, generate_webhook_secret(), issued.stored_hash)
    assert wrong.reason == "webhook_secret_mismatch"
    assert authenticate_webhook(ring(), BOT, None, issued.stored_hash).reason == (
        "webhook_secret_missing")
    assert authenticate_webhook(ring(), BOT, issued.secret, None).reason == (
        "webhook_secret_not_configured")


def test_an_edited_bound_hash_is_refused() -> None:
    issued = issue_bound_webhook_secret(ring(), BOT)
    body = issued.stored_hash
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    assert not authenticate_webhook(ring(), BOT, issued.secret, flipped).ok
    relabelled = body.replace("v2.k-old.", "v2.k-new.", 1)  # prefix and envelope disagree
    assert authenticate_webhook(ring(), BOT, issued.secret, relabelled).reason == (
        "webhook_secret_hash_malformed")
    assert authenticate_webhook(ring(), BOT, issued.secret, "v2.k-old.!!").reason == (
        "webhook_secret_hash_malformed")


def test_a_legacy_hash_is_accepted_once_and_comes_back_bound() -> None:
    secret = generate_webhook_secret()
    legacy = hash_webhook_secret(ring().webhook_peppers()["k-old"], "k-old", secret)
    result = authenticate_webhook(rotated(), BOT, secret, legacy)
    assert result.ok and result.needs_rehash and result.rehashed is not None
    assert stored_hash_version(result.rehashed) == "v2"
    assert stored_hash_key_id(result.rehashed) == "k-new"
    assert secret not in repr(result)
    new_only = ServerKeyRing({"k-new": SERVER_KEY_NEW}, "k-new")
    assert authenticate_webhook(new_only, BOT, secret, result.rehashed).ok
    assert not authenticate_webhook(new_only, OTHER, secret, result.rehashed).ok


def test_a_bound_hash_under_a_previous_key_is_rehashed_on_use_and_by_resealing() -> None:
    issued = issue_bound_webhook_secret(ring(), BOT)
    result = authenticate_webhook(rotated(), BOT, issued.secret, issued.stored_hash)
    assert result.ok and result.needs_rehash
    assert stored_hash_key_id(result.rehashed) == "k-new"
    resealed = reseal_bound_hash(rotated(), BOT, issued.stored_hash)  # no secret needed
    assert stored_hash_key_id(resealed) == "k-new"
    assert reseal_bound_hash(rotated(), BOT, resealed) == resealed
    new_only = ServerKeyRing({"k-new": SERVER_KEY_NEW}, "k-new")
    assert authenticate_webhook(new_only, BOT, issued.secret, resealed).ok
    with pytest.raises(ValueError):
        reseal_bound_hash(rotated(), BOT, hash_webhook_secret(b"p" * 32, "k-old", issued.secret))
    with pytest.raises(EnvelopeAuthFailed):  # another bot's hash does not open for this one
        reseal_bound_hash(rotated(), OTHER, issued.stored_hash)


def test_whatever_is_only_under_a_retired_key_is_refused_never_migrated() -> None:
    secret = generate_webhook_secret()
    legacy = hash_webhook_secret(ring().webhook_peppers()["k-old"], "k-old", secret)
    bound = hash_bound_webhook_secret(ring(), BOT, secret)
    retired = rotated(retire_old=True)
    for stored in (legacy, bound):
        result = authenticate_webhook(retired, BOT, secret, stored)
        assert (result.ok, result.reason, result.rehashed) == (
            False, "webhook_secret_retired_key", None)
    with pytest.raises(RetiredKeyId):
        reseal_bound_hash(retired, BOT, bound)
    binding = Binding("wallet-1", "agent_privkey_legacy")
    envelope = ring().seal(b"agent key", binding)
    assert rotated().open(envelope, binding) == b"agent key"
    with pytest.raises(RetiredKeyId):
        retired.open(envelope, binding)
    with pytest.raises(RetiredKeyId):
        retired.reencrypt(envelope, binding)


def test_a_retired_key_signs_no_policy_that_passes() -> None:
    policy = BotPolicy(BOT, "SOL-PERP", Decimal(5), Decimal(500))
    old_keys = ring().policy_keys()
    mac = compute_policy_hmac(old_keys["k-old"], "k-old", policy)
    previous = verify_policy_hmac(rotated().policy_keys(), policy, mac, current_key_id="k-new")
    assert previous.ok and previous.needs_resign
    retired = rotated(retire_old=True)
    assert set(retired.policy_keys()) == {"k-new"}
    assert set(retired.retired_policy_keys()) == {"k-old"}
    refused = verify_policy_hmac(retired.policy_keys(), policy, mac, current_key_id="k-new")
    assert not refused.ok and refused.key_id == "k-old"
    assert set(retired.webhook_peppers()) == {"k-new"}


def test_the_ring_names_its_previous_and_retired_keys() -> None:
    keys = {"k0": SERVER_KEY_OLD, "k1": SERVER_KEY_NEW, "k2": bytes(32)}
    r = ServerKeyRing(keys, "k2", {"k0"})
    assert r.retired_key_ids == {"k0"} and r.previous_key_ids == {"k1"}
    assert r.trusted_key_ids == {"k1", "k2"} and r.is_retired("k0") and not r.is_retired("k1")
    assert "k0" in repr(r) and SERVER_KEY_OLD.hex() not in repr(r)
    assert r.retiring("k1").retired_key_ids == {"k0", "k1"}
    assert r.without("k0").retired_key_ids == frozenset()
    assert len(r.secret_material()) == 9  # retired keys are still scrubbed from logs
    with pytest.raises(ServerKeyError):
        ServerKeyRing(keys, "k2", {"k2"})
    with pytest.raises(ServerKeyError):
        ServerKeyRing(keys, "k2", {"k9"})


def _key(path: Path, byte: int) -> Path:
    path.write_bytes(bytes([byte]) * 32)
    path.chmod(0o600)
    return path


def test_server_keys_retired_is_read_from_the_settings(tmp_path: Path) -> None:
    k0, k1 = _key(tmp_path / "k0", 1), _key(tmp_path / "k1", 2)
    env = {"STATE_DIR": str(tmp_path), "SERVER_KEYS": f"k0=file:{k0},k1=file:{k1}",
           "SERVER_KEY_CURRENT": "k1", "SERVER_KEYS_RETIRED": "k0"}
    loaded = server_key_ring(load_settings(env), {})
    assert loaded.retired_key_ids == {"k0"} and loaded.current_key_id == "k1"
    for retired in ("k1", "k7"):
        with pytest.raises(ServerKeyError, match="SERVER_KEYS_RETIRED"):
            server_key_ring(load_settings({**env, "SERVER_KEYS_RETIRED": retired}), {})


def test_no_secret_or_key_in_results_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    issued = issue_bound_webhook_secret(ring(), BOT)
    texts: list[str] = []
    for r, bot_id, presented in ((rotated(), BOT, issued.secret), (rotated(), OTHER, issued.secret),
                                 (rotated(True), BOT, issued.secret),
                                 (ring(), BOT, issued.secret[:-2] + "xx")):
        texts.append(repr(authenticate_webhook(r, bot_id, presented, issued.stored_hash)))
    for r, bot_id in ((rotated(True), BOT), (rotated(), OTHER)):
        try:
            reseal_bound_hash(r, bot_id, issued.stored_hash)
        except Exception as exc:  # every refusal's text is searched
            texts.append(f"{exc!r} {exc}")
    texts += [repr(rotated(True)), repr(issued), caplog.text]
    joined = "\n".join(texts)
    assert len(texts) == 9
    assert issued.secret not in joined and issued.secret[5:] not in joined
    for key in (SERVER_KEY_OLD, SERVER_KEY_NEW, *rotated().webhook_peppers().values()):
        assert key.hex() not in joined


def test_derived_mac_keys_leave_retired_keys_out() -> None:
    info = b"QuantumVault v1 test-mac"
    assert set(rotated().derived_keys(info)) == {"k-old", "k-new"}
    assert set(rotated(True).derived_keys(info)) == {"k-new"}
    assert rotated().derived_keys(info)["k-new"] == rotated(True).derived_keys(info)["k-new"]
    assert rotated().derived_keys(info)["k-new"] != rotated().derived_keys(b"other")["k-new"]
