"""Webhook secrets, admin token, TradingView source IP allowlist, body size limit."""

from __future__ import annotations

import io

import pytest

from security.errors import BadContentLength, BodyTooLarge
from security.webhook_auth import (
    SECRET_RE,
    TRADINGVIEW_SOURCE_IPS,
    SourceIpPolicy,
    bearer_token,
    check_source_ip,
    generate_webhook_secret,
    hash_webhook_secret,
    issue_webhook_secret,
    read_body_limited,
    verify_admin_token,
    verify_webhook_secret,
)
from tests.security.helpers import ring

PEPPERS = ring("k-old").webhook_peppers()


def test_generated_secrets_are_url_safe_unique_and_long() -> None:
    secrets = {generate_webhook_secret() for _ in range(50)}
    assert len(secrets) == 50
    for s in secrets:
        assert SECRET_RE.fullmatch(s)
        assert len(s) == 5 + 43


def test_hash_round_trip_and_store_only_hash() -> None:
    secret = generate_webhook_secret()
    stored = hash_webhook_secret(PEPPERS["k-old"], "k-old", secret)
    assert secret not in stored and secret[5:] not in stored
    assert verify_webhook_secret(PEPPERS, secret, stored).ok


def test_wrong_missing_and_malformed_are_refused() -> None:
    secret = generate_webhook_secret()
    stored = hash_webhook_secret(PEPPERS["k-old"], "k-old", secret)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert verify_webhook_secret(PEPPERS, flipped, stored).reason == "webhook_secret_mismatch"
    assert verify_webhook_secret(PEPPERS, generate_webhook_secret(), stored).reason == (
        "webhook_secret_mismatch"
    )
    assert verify_webhook_secret(PEPPERS, None, stored).reason == "webhook_secret_missing"
    assert verify_webhook_secret(PEPPERS, secret, None).reason == "webhook_secret_not_configured"
    assert verify_webhook_secret(PEPPERS, secret, "x").reason == "webhook_secret_hash_malformed"
    gone = stored.replace("k-old", "k-gone")
    assert verify_webhook_secret(PEPPERS, secret, gone).reason == "webhook_secret_unknown_key"
    assert not verify_webhook_secret(PEPPERS, "é\udcff", stored).ok


def test_hash_needs_the_pepper() -> None:
    secret = generate_webhook_secret()
    stored = hash_webhook_secret(PEPPERS["k-old"], "k-old", secret)
    other = ring("k-new").webhook_peppers()
    forged = {"k-old": other["k-new"]}
    assert verify_webhook_secret(forged, secret, stored).reason == "webhook_secret_mismatch"


def test_old_key_hash_verifies_and_asks_for_rehash() -> None:
    secret = generate_webhook_secret()
    stored = hash_webhook_secret(PEPPERS["k-old"], "k-old", secret)
    result = verify_webhook_secret(
        ring("k-new").webhook_peppers(), secret, stored, current_key_id="k-new"
    )
    assert result.ok and result.needs_rehash


def test_admin_token() -> None:
    assert verify_admin_token("s3cret-admin-token", "s3cret-admin-token")
    assert verify_admin_token(b"s3cret-admin-token", b"s3cret-admin-token")
    assert not verify_admin_token("s3cret-admin-token", "s3cret-admin-tokeN")
    assert not verify_admin_token("s3cret-admin-token", "s3cret")
    assert not verify_admin_token("s3cret-admin-token", None)
    assert not verify_admin_token("", "")
    assert bearer_token("Bearer abc.def") == "abc.def"
    assert bearer_token("basic abc") is None
    assert bearer_token(None) is None


def test_ip_allowlist_disabled_allows_all() -> None:
    assert check_source_ip(SourceIpPolicy(), "203.0.113.9").allowed


@pytest.mark.parametrize("ip", sorted(TRADINGVIEW_SOURCE_IPS))
def test_tradingview_ips_allowed(ip: str) -> None:
    decision = check_source_ip(SourceIpPolicy(enabled=True), ip)
    assert decision.allowed and decision.client_ip == ip
    assert check_source_ip(SourceIpPolicy(enabled=True), "::ffff:" + ip).allowed


def test_other_ip_refused_and_xff_ignored_by_default() -> None:
    policy = SourceIpPolicy(enabled=True)
    decision = check_source_ip(policy, "203.0.113.9", "52.89.214.238")
    assert not decision.allowed and decision.reason == "source_ip_not_allowed"
    assert not check_source_ip(policy, "garbage").allowed


def test_xff_only_from_trusted_proxy_rightmost_untrusted_hop() -> None:
    policy = SourceIpPolicy(enabled=True, trust_forwarded_for=True, trusted_proxies=("10.0.0.0/8",))
    assert check_source_ip(policy, "10.0.0.5", "52.89.214.238").allowed
    # A spoofed leftmost entry does not help: the proxy appended the real client.
    spoofed = check_source_ip(policy, "10.0.0.5", "52.89.214.238, 203.0.113.9")
    assert not spoofed.allowed and spoofed.client_ip == "203.0.113.9"
    # Chains of trusted proxies are skipped from the right.
    assert check_source_ip(policy, "10.0.0.5", "52.32.178.7, 10.1.1.1").allowed
    # A direct, untrusted peer cannot use XFF.
    assert not check_source_ip(policy, "203.0.113.9", "52.89.214.238").allowed
    assert not check_source_ip(policy, "10.0.0.5", "not-an-ip").allowed


def test_body_limit() -> None:
    assert read_body_limited(io.BytesIO(b"abc"), "3", limit=10) == b"abc"
    assert read_body_limited(io.BytesIO(b"x" * 10), None, limit=10) == b"x" * 10
    with pytest.raises(BodyTooLarge):
        read_body_limited(io.BytesIO(b"x" * 11), None, limit=10)
    with pytest.raises(BodyTooLarge):
        read_body_limited(io.BytesIO(b""), "11", limit=10)
    for bad in ("-1", "1e3", "abc", " 5"):
        with pytest.raises(BadContentLength):
            read_body_limited(io.BytesIO(b""), bad, limit=10)
    assert read_body_limited(io.BytesIO(b"zzz"), "0", limit=10) == b""


def test_verification_is_fast_enough_for_a_webhook() -> None:
    """Hash verification must not eat the 3 s budget (or stall gevent): 2000 checks < 1 s."""
    import time

    secret = generate_webhook_secret()
    stored = hash_webhook_secret(PEPPERS["k-old"], "k-old", secret)
    start = time.perf_counter()
    for _ in range(2000):
        assert verify_webhook_secret(PEPPERS, secret, stored).ok
    assert time.perf_counter() - start < 1.0


def test_issue_secret_hides_secret_in_repr() -> None:
    issued = issue_webhook_secret(PEPPERS["k-old"], "k-old")
    assert issued.secret not in repr(issued)
    assert verify_webhook_secret(PEPPERS, issued.secret, issued.stored_hash).ok
