"""Drive every security path with known secrets; search logs, errors and reprs for them."""

from __future__ import annotations

import base64
import logging
import os
import traceback
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import base58
import pytest

from security.agent_keys import (
    open_agent_mnemonic,
    open_agent_privkey,
    seal_agent_mnemonic,
    seal_agent_privkey,
)
from security.emergency_stop import (
    NO_STOP,
    OrderIntent,
    OrderKind,
    OrderOrigin,
    StopMode,
    StopState,
    decide,
)
from security.envelope import Binding, open_envelope
from security.execution import (
    ExecutionAuthorization,
    check_execution,
    open_umk_for_bot,
    seal_umk_for_bot,
    sign_execution_grant,
    verify_execution_grant,
)
from security.key_hierarchy import derive_subkeys, derive_umk, umk_message
from security.policy import BotPolicy, compute_policy_hmac, verify_policy_hmac
from security.server_key import SealedItem, load_server_key_file, reencrypt_all
from security.webhook_auth import (
    generate_webhook_secret,
    hash_webhook_secret,
    verify_admin_token,
    verify_webhook_secret,
)
from tests.security.helpers import OTHER_SEED, WALLET_SEED, ring, wallet

AGENT_KEY = bytes(range(128, 192))
MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _forms(secret: bytes) -> set[str]:
    b64 = base64.b64encode(secret).decode()
    return {secret.hex(), secret.hex().upper(), base58.b58encode(secret).decode(), b64,
            b64.rstrip("="),
            base64.urlsafe_b64encode(secret).decode().rstrip("="), repr(secret)[2:-1]}


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_no_secret_in_logs_errors_or_reprs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    kp, address = wallet()
    other_kp, _ = wallet(OTHER_SEED)
    signature = bytes(kp.sign_message(umk_message(address)))
    umk = derive_umk(address, signature)
    keys = derive_subkeys(umk)
    r = ring("k-new")
    webhook_secret = generate_webhook_secret()
    secrets = [WALLET_SEED, signature, umk.key, keys.key_privkey, keys.key_mnemonic,
               keys.key_execution, AGENT_KEY, *r.secret_material(),
               *r.policy_keys().values(), *r.webhook_peppers().values()]

    def attempt(fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        try:
            seen.append(repr(fn(*args, **kwargs)))
        except Exception as exc:  # every refusal's text is searched
            seen.append(_describe(exc))

    seen += [repr(umk), repr(keys), str(keys), repr(r)]
    attempt(derive_umk, address, bytes(other_kp.sign_message(umk_message(address))))
    sealed = seal_agent_privkey(keys, AGENT_KEY)
    words = seal_agent_mnemonic(keys, MNEMONIC)
    other_keys = derive_subkeys(
        derive_umk(str(other_kp.pubkey()), bytes(other_kp.sign_message(
            umk_message(str(other_kp.pubkey())))))
    )
    attempt(open_agent_privkey, other_keys, sealed)
    attempt(open_agent_mnemonic, other_keys, words)
    attempt(open_agent_mnemonic, keys, sealed)
    attempt(open_envelope, {"umk-v1.key_privkey": keys.key_mnemonic}, sealed,
            Binding(address, "agent_privkey"))
    attempt(open_envelope, {}, sealed, Binding(address, "agent_privkey"))
    attempt(open_envelope, {"x": b"short"}, sealed[:10], Binding(address, "agent_privkey"))
    umk_sealed = seal_umk_for_bot(ring("k-old"), umk, "bot-1")
    attempt(open_umk_for_bot, r, address, "bot-2", umk_sealed)
    attempt(reencrypt_all, r, [SealedItem(1, umk_sealed, Binding(address, "umk_for_bot:bot-9"))])
    attempt(reencrypt_all, r, [SealedItem(1, umk_sealed, Binding(address, "umk_for_bot:bot-1"))])
    auth = ExecutionAuthorization("bot-1", address, True, NOW + timedelta(hours=1))
    auth = replace(auth, grant_mac=sign_execution_grant(keys, "bot-1", auth.expires_at))
    attempt(check_execution, replace(auth, execution_active=False), NOW)
    attempt(verify_execution_grant, keys, replace(auth, bot_id="bot-2"))
    policy = BotPolicy("bot-1", "SOL-PERP", 5, 1000)
    stored = compute_policy_hmac(r.policy_keys()["k-new"], "k-new", policy)
    attempt(verify_policy_hmac, r.policy_keys(), replace(policy, leverage=20), stored)
    attempt(verify_policy_hmac, r.policy_keys(), replace(policy, leverage="NaN"), stored)
    hashed = hash_webhook_secret(r.webhook_peppers()["k-new"], "k-new", webhook_secret)
    attempt(verify_webhook_secret, r.webhook_peppers(), webhook_secret[:-2] + "xx", hashed)
    attempt(verify_admin_token, "admin-token-xyz-123", "admin-token-xyz-124")
    attempt(decide, StopState(StopMode.STOP, "s"), NO_STOP,
            OrderIntent(OrderOrigin.WEBHOOK, OrderKind.OPEN, False))
    for name, content, mode in [("loose", r.secret_material()[0], 0o644),
                                ("odd", r.secret_material()[0] + b"!!", 0o600),
                                ("hexish", r.secret_material()[1].hex()[:-1].encode(), 0o600)]:
        path = tmp_path / name
        path.write_bytes(content)
        os.chmod(path, mode)
        attempt(load_server_key_file, path)
    logging.getLogger("quantumvault.security").info("done %s", len(seen))

    haystack = "\n".join(seen) + "\n" + caplog.text
    assert "Refused" in haystack or "did not authenticate" in haystack  # paths really ran
    for secret in secrets:
        for form in _forms(secret):
            assert form not in haystack, "a secret leaked"
    for text in (webhook_secret, MNEMONIC, "admin-token-xyz-123", "sausage"):
        assert text not in haystack, "a secret leaked"
