"""Inbound authentication for the webhook server: per-bot secrets, admin token, source IPs, size.

Webhook secrets are generated here with 256 bits of entropy ("qvwh_" + 43 base64url chars; the
prefix lets the log redaction filter recognise one anywhere). Only a hash is stored, bound to
its bot:

    v2.<key_id>.<envelope>   envelope = AES-GCM seal, under the server key <key_id>, of
                             SHA-256("QuantumVault v2 webhook-secret" || bot id || secret),
                             associated data bound to (bot id, "webhook_secret")

The bot id is in the digest and in the envelope's associated data, so a hash copied onto
another bot's row never authenticates it. Sealing (not a keyed hash) is what lets
`keys reencrypt` move every v2 hash to the current server key without the secret: after a
rotation nothing needs the old key. A leaked database alone still cannot test a guess.

Legacy "v1.<key_id>.<hex HMAC-SHA256(pepper, secret)>" hashes (pepper from
`ServerKeyRing.webhook_peppers()`) are not bound to their bot and cannot be re-made without the
secret: `authenticate_webhook` accepts one (under a trusted key) and hands back its v2
replacement, which the webhook stores with compare-and-swap; `bot rotate-secret` replaces one.
`keys reencrypt` lists the bots still on v1, which keep their key in use.

Why HMAC with a pepper and not scrypt: a slow hash protects low-entropy passwords; a 256-bit
random secret cannot be brute-forced either way. scrypt would cost tens of milliseconds of CPU
per request, and under gevent a CPU-bound call stalls every greenlet in the process, so any
unauthenticated caller could freeze the daemon with junk requests while TradingView waits 3 s.
HMAC costs microseconds; the pepper means a leaked database alone cannot even test a guess.
Comparison is hmac.compare_digest on fixed-length digests.

A hash made under a previous server key id still verifies while that key is loaded, and the
result says `needs_rehash` and carries `rehashed`, the v2 hash under the current key to store.
A hash under a retired key id is refused (`webhook_secret_retired_key`), never re-made; one
under a removed key id needs `bot rotate-secret`.

Source IPs: TradingView sends from four fixed addresses. X-Forwarded-For is only
read when the policy says so and the direct peer is a configured trusted proxy; then the
rightmost address that is not itself a trusted proxy is the client (leftmost entries are
attacker-controlled).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from security.envelope import Binding, parse_header
from security.errors import BadContentLength, BodyTooLarge, EnvelopeAuthFailed, EnvelopeError
from security.server_key import RetiredKeyId, ServerKeyRing

log = logging.getLogger(__name__)

SECRET_PREFIX = "qvwh_"
SECRET_RE = re.compile(r"qvwh_[A-Za-z0-9_\-]{43}")
_STORED_RE = re.compile(r"^v1\.([A-Za-z0-9._:\-]{1,64})\.([0-9a-f]{64})\Z")
_STORED_V2_RE = re.compile(r"^v2\.([A-Za-z0-9._:\-]{1,64})\.([A-Za-z0-9_\-]{16,1024})\Z")
_WEBHOOK_DOMAIN = b"QuantumVault v1 webhook-secret\x00"
_BOUND_DOMAIN = b"QuantumVault v2 webhook-secret\x00"
WEBHOOK_PURPOSE = "webhook_secret"

TRADINGVIEW_SOURCE_IPS: frozenset[str] = frozenset(
    {"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"}
)
DEFAULT_MAX_BODY_BYTES = 64 * 1024

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def generate_webhook_secret() -> str:
    """A fresh URL-safe webhook secret with 256 bits of entropy; shown to the user once."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class IssuedSecret:
    """A new secret (shown to the user once, never in repr) and the hash to store."""

    secret: str = field(repr=False)
    stored_hash: str


def issue_webhook_secret(pepper: bytes, key_id: str) -> IssuedSecret:
    """For `bot create` / `bot rotate-secret`: a fresh secret plus its storable hash."""
    secret = generate_webhook_secret()
    return IssuedSecret(secret, hash_webhook_secret(pepper, key_id, secret))


def hash_webhook_secret(pepper: bytes, key_id: str, secret: str) -> str:
    """The only form of the secret that is stored: "v1.<key_id>.<hex>"."""
    if not re.fullmatch(r"[A-Za-z0-9._:\-]{1,64}", key_id):
        raise ValueError("key id must match [A-Za-z0-9._:-]{1,64}")
    digest = hmac.new(pepper, _WEBHOOK_DOMAIN + secret.encode("utf-8"), hashlib.sha256)
    return f"v1.{key_id}.{digest.hexdigest()}"


@dataclass(frozen=True)
class WebhookAuthResult:
    """Verdict of a webhook secret check; reason is a fixed label (no secret material).

    `rehashed` (with `needs_rehash`) is the bound v2 hash under the current key that should
    replace the stored one (compare-and-swap), for a v1 hash or one under a previous key.
    """

    ok: bool
    reason: str | None = None
    needs_rehash: bool = False
    rehashed: str | None = field(default=None, repr=False)


def webhook_binding(bot_id: str) -> Binding:
    """What a bound hash belongs to; ValueError for an id no envelope can bind (not ASCII)."""
    return Binding(str(bot_id), WEBHOOK_PURPOSE)


def _bound_digest(bot_id: str, secret: str) -> bytes:
    """SHA-256 over the domain, the length-prefixed bot id and the secret."""
    raw_id = str(bot_id).encode("utf-8")
    return hashlib.sha256(_BOUND_DOMAIN + struct.pack(">I", len(raw_id)) + raw_id
                          + secret.encode("utf-8", "replace")).digest()


def hash_bound_webhook_secret(ring: ServerKeyRing, bot_id: str, secret: str) -> str:
    """The stored form bound to `bot_id`: "v2.<current key id>.<envelope>"."""
    envelope = ring.seal(_bound_digest(bot_id, secret), webhook_binding(bot_id))
    return f"v2.{ring.current_key_id}.{envelope}"


def issue_bound_webhook_secret(ring: ServerKeyRing, bot_id: str) -> IssuedSecret:
    """For `bot create` / `bot rotate-secret`: a fresh secret and its hash bound to the bot."""
    secret = generate_webhook_secret()
    return IssuedSecret(secret, hash_bound_webhook_secret(ring, bot_id, secret))


def stored_hash_version(stored: str | None) -> str | None:
    """"v1" (unbound, legacy), "v2" (bound), None when absent or unreadable."""
    if stored and _STORED_RE.match(stored):
        return "v1"
    if stored and _STORED_V2_RE.match(stored):
        return "v2"
    return None


def stored_hash_key_id(stored: str | None) -> str | None:
    """The server key id a stored hash names, or None when it cannot be read."""
    match = (_STORED_RE.match(stored) or _STORED_V2_RE.match(stored)) if stored else None
    return match.group(1) if match else None


def reseal_bound_hash(ring: ServerKeyRing, bot_id: str, stored: str) -> str:
    """Rotation without the secret: a v2 hash re-sealed under the current key (unchanged if
    already current). Raises EnvelopeError (retired/unknown key, tampered, not this bot's) or
    ValueError (not a v2 hash); a v1 hash can only be re-made from the secret."""
    match = _STORED_V2_RE.match(stored)
    if match is None:
        raise ValueError("not a bound (v2) webhook secret hash")
    key_id, envelope = match.group(1), match.group(2)
    if parse_header(envelope).key_id != key_id:
        raise EnvelopeAuthFailed("stored hash key id does not match its envelope")
    binding = webhook_binding(bot_id)
    digest = ring.open(envelope, binding)  # also for a current one: a copy or an edit is named
    if key_id == ring.current_key_id:
        return stored
    return f"v2.{ring.current_key_id}.{ring.seal(digest, binding)}"


def authenticate_webhook(
    ring: ServerKeyRing, bot_id: str, presented: str | None, stored: str | None
) -> WebhookAuthResult:
    """Check a presented secret against the bot's stored hash (v2 bound, or legacy v1).

    Constant-time comparisons; a hash under a retired key is refused; a v1 hash or one under
    a previous key comes back with its bound replacement under the current key (`rehashed`).
    """
    if not presented:
        return WebhookAuthResult(False, "webhook_secret_missing")
    if not stored:
        return WebhookAuthResult(False, "webhook_secret_not_configured")
    version = stored_hash_version(stored)
    key_id = stored_hash_key_id(stored)
    if version is None or key_id is None:
        return WebhookAuthResult(False, "webhook_secret_hash_malformed")
    if ring.is_retired(key_id):
        return WebhookAuthResult(False, "webhook_secret_retired_key")
    if version == "v1":
        legacy = verify_webhook_secret(ring.webhook_peppers(), presented, stored)
        if not legacy.ok:
            return legacy
    else:
        envelope = stored.split(".", 2)[2]
        try:
            if parse_header(envelope).key_id != key_id:
                return WebhookAuthResult(False, "webhook_secret_hash_malformed")
            digest = ring.open(envelope, webhook_binding(bot_id))
        except RetiredKeyId:
            return WebhookAuthResult(False, "webhook_secret_retired_key")
        except EnvelopeAuthFailed:  # another bot's hash, or an edited one
            return WebhookAuthResult(False, "webhook_secret_mismatch")
        except EnvelopeError as exc:
            unknown = type(exc).__name__ == "UnknownKeyId"
            return WebhookAuthResult(False, "webhook_secret_unknown_key" if unknown
                                     else "webhook_secret_hash_malformed")
        except ValueError:  # a bot id no envelope can be bound to
            return WebhookAuthResult(False, "webhook_secret_mismatch")
        if not hmac.compare_digest(digest, _bound_digest(bot_id, presented)):
            return WebhookAuthResult(False, "webhook_secret_mismatch")
        if key_id == ring.current_key_id:
            return WebhookAuthResult(True)
    try:
        rehashed = hash_bound_webhook_secret(ring, bot_id, presented)
    except ValueError:  # not bindable (non-ASCII id): accepted as it is, never upgraded
        return WebhookAuthResult(True)
    return WebhookAuthResult(True, None, needs_rehash=True, rehashed=rehashed)


def verify_webhook_secret(
    peppers: Mapping[str, bytes],
    presented: str | None,
    stored: str | None,
    *,
    current_key_id: str | None = None,
) -> WebhookAuthResult:
    """Constant-time check against a legacy v1 hash only (the webhook calls
    `authenticate_webhook`, which also reads bound v2 hashes and refuses retired keys)."""
    if not presented:
        return WebhookAuthResult(False, "webhook_secret_missing")
    if not stored:
        return WebhookAuthResult(False, "webhook_secret_not_configured")
    match = _STORED_RE.match(stored)
    if match is None:
        return WebhookAuthResult(False, "webhook_secret_hash_malformed")
    key_id, digest = match.group(1), match.group(2)
    pepper = peppers.get(key_id)
    if pepper is None:
        return WebhookAuthResult(False, "webhook_secret_unknown_key")
    mac = hmac.new(pepper, _WEBHOOK_DOMAIN + presented.encode("utf-8", "replace"), hashlib.sha256)
    if not hmac.compare_digest(mac.digest(), bytes.fromhex(digest)):
        return WebhookAuthResult(False, "webhook_secret_mismatch")
    stale = current_key_id is not None and key_id != current_key_id
    return WebhookAuthResult(True, None, needs_rehash=stale)


def verify_admin_token(expected: bytes | str, presented: str | bytes | None) -> bool:
    """Constant-time admin token check; compares SHA-256 digests so length does not leak."""
    if not presented or not expected:
        return False
    exp = expected.encode("utf-8") if isinstance(expected, str) else expected
    got = presented.encode("utf-8") if isinstance(presented, str) else presented
    return hmac.compare_digest(hashlib.sha256(exp).digest(), hashlib.sha256(got).digest())


def bearer_token(authorization_header: str | None) -> str | None:
    """Extract the token from an "Authorization: Bearer <token>" header value."""
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class SourceIpPolicy:
    """Allowlist config: off by default; XFF read only from configured trusted proxies."""

    enabled: bool = False
    allowed: frozenset[str] = TRADINGVIEW_SOURCE_IPS
    trust_forwarded_for: bool = False
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)

    def proxy_networks(self) -> list[IpNetwork]:
        """Trusted proxies parsed as networks (single addresses become /32 or /128)."""
        return [ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies]


@dataclass(frozen=True)
class SourceIpDecision:
    """Whether the request may proceed, the client address used, and a fixed reason label."""

    allowed: bool
    client_ip: str | None
    reason: str | None = None


def _parse_ip(text: str) -> IpAddress | None:
    """Parse one address; tolerate an IPv4-mapped IPv6 form; None if unparseable."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _in_any(addr: IpAddress, networks: Iterable[IpNetwork]) -> bool:
    """True if addr lies in any of the networks."""
    return any(addr in net for net in networks)


def client_ip(policy: SourceIpPolicy, remote_addr: str | None, forwarded_for: str | None) -> (
    IpAddress | None
):
    """The client address to judge: the peer, or (trusted proxy only) the XFF client."""
    peer = _parse_ip(remote_addr or "")
    if peer is None:
        return None
    proxies = policy.proxy_networks()
    if not (policy.trust_forwarded_for and forwarded_for and _in_any(peer, proxies)):
        return peer
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        addr = _parse_ip(hop)
        if addr is None:
            return None
        if not _in_any(addr, proxies):
            return addr
    return peer


def check_source_ip(
    policy: SourceIpPolicy, remote_addr: str | None, forwarded_for: str | None = None
) -> SourceIpDecision:
    """Apply the allowlist (if enabled) to the request's client address."""
    addr = client_ip(policy, remote_addr, forwarded_for)
    shown = None if addr is None else str(addr)
    if not policy.enabled:
        return SourceIpDecision(True, shown)
    if addr is None:
        return SourceIpDecision(False, None, "source_ip_unparseable")
    allowed = {_parse_ip(a) for a in policy.allowed}
    if addr in allowed:
        return SourceIpDecision(True, shown)
    return SourceIpDecision(False, shown, "source_ip_not_allowed")


def check_content_length(content_length: str | None, limit: int = DEFAULT_MAX_BODY_BYTES) -> (
    int | None
):
    """Validate a Content-Length header before reading; None when absent (chunked)."""
    if content_length is None or content_length == "":
        return None
    if not content_length.isascii() or not content_length.isdigit():
        raise BadContentLength("Content-Length is not a non-negative integer")
    length = int(content_length)
    if length > limit:
        raise BodyTooLarge(f"request body of {length} bytes exceeds the {limit} byte limit")
    return length


def read_body_limited(
    stream: BinaryIO, content_length: str | None, limit: int = DEFAULT_MAX_BODY_BYTES
) -> bytes:
    """Read a request body, never more than limit + 1 bytes; refuse if it exceeds the limit."""
    length = check_content_length(content_length, limit)
    if length is not None:
        return stream.read(length) if length else b""
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(f"request body exceeds the {limit} byte limit")
    return body
