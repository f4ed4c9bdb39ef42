"""The server key ring: the legacy path for subscriber bots and the seal for umk_for_bot.

Where a server key may come from: a file path, or a systemd credential
($CREDENTIALS_DIRECTORY/<name>, e.g. `LoadCredential=` / `LoadCredentialEncrypted=`). There is
deliberately no function that takes the key itself as a string, so it cannot arrive through
argv or an environment value (both visible in /proc and often logged). A file that group or
others may access, that is not a regular file, or that is owned by someone other than this
process's user (or root) is refused.

File contents: exactly 32 raw bytes, or 64 hex characters, or base64/base64url of 32 bytes
(surrounding whitespace ignored for the text forms). Generate one with
`head -c 32 /dev/urandom > key && chmod 600 key`.

Rotation without downtime: the ring holds several keys by id, seals with the current one and
opens with whichever id an envelope names. Deploy the new key as current with the old one still
loaded, run `reencrypt_all` over the stored envelopes, write the results back, then drop the
old key (`without`) once `key_ids_in_use` no longer reports it.

Every key that is not current is either *previous* (trusted: what opens or verifies under it is
accepted and migrated to the current key on use) or *retired* (distrusted: an envelope, policy
MAC or webhook hash under it is refused, never re-sealed or re-signed). A retired key stays in
the ring only so refusals can name it and logs are scrubbed of it: `open`, `reencrypt`,
`policy_keys()` and `webhook_peppers()` leave it out; `retired_policy_keys()` gives its MAC keys
to a verifier that wants to tell "signed under a retired key" from "tampered".

Per-purpose keys: a server key never encrypts directly. Each envelope uses
HKDF(server_key, info=b"QuantumVault v1 server-seal\\n" + purpose), so the legacy agent keys,
and every bot's sealed UMK ("umk_for_bot:<bot_id>"), use different AES keys, on top of the
wallet/purpose binding in the associated data.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from security.envelope import Binding, open_envelope, parse_header, seal
from security.errors import ServerKeyError, UnknownKeyId

KEY_LEN = 32
_SEAL_INFO = b"QuantumVault v1 server-seal\n"
_POLICY_INFO = b"QuantumVault v1 policy-hmac"
_WEBHOOK_INFO = b"QuantumVault v1 webhook-pepper"
_CRED_NAME_RE = re.compile(r"^[A-Za-z0-9._\-]{1,128}\Z")
_MAX_FILE = 4096


def _derive(server_key: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 from the server key to one purpose key."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=b"", info=info).derive(server_key)


def _parse_key_bytes(raw: bytes) -> bytes:
    """Accept 32 raw bytes, 64 hex chars or base64(url) of 32 bytes; refuse anything else."""
    if len(raw) == KEY_LEN:
        return bytes(raw)
    text = raw.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text.decode("ascii"))
    if re.fullmatch(rb"[A-Za-z0-9+/_\-]{43}=?", text):
        try:
            decoded = base64.urlsafe_b64decode(
                text.replace(b"+", b"-").replace(b"/", b"_").rstrip(b"=") + b"="
            )
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) == KEY_LEN:
            return decoded
    raise ServerKeyError(
        "server key has an unrecognised format "
        "(expected 32 raw bytes, 64 hex characters or base64 of 32 bytes)"
    )


def load_server_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a server key from a file after refusing unsafe ownership or permissions."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(os.fspath(path), flags)
    except OSError as exc:
        raise ServerKeyError(f"cannot open server key file {os.fspath(path)!r}: "
                             f"{exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ServerKeyError("server key path is not a regular file")
        if st.st_mode & 0o077:
            raise ServerKeyError(
                f"server key file mode {stat.S_IMODE(st.st_mode):04o} is accessible to group "
                "or others; chmod 600 (or 400) it"
            )
        if st.st_uid not in (os.geteuid(), 0):
            raise ServerKeyError("server key file is owned by another user")
        raw = os.read(fd, _MAX_FILE + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_FILE:
        raise ServerKeyError("server key file is too large")
    return _parse_key_bytes(raw)


def load_server_key_credential(name: str, environ: Mapping[str, str] | None = None) -> bytes:
    """Read a server key passed as a systemd credential ($CREDENTIALS_DIRECTORY/<name>)."""
    env = os.environ if environ is None else environ
    if not _CRED_NAME_RE.match(name):
        raise ServerKeyError("credential name must match [A-Za-z0-9._-]{1,128}")
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ServerKeyError("CREDENTIALS_DIRECTORY is not set (no systemd credentials)")
    return load_server_key_file(Path(directory) / name)


def load_key_source(source: str, environ: Mapping[str, str] | None = None) -> bytes:
    """Load one key from a config reference: "file:/path" or "credential:<name>"."""
    kind, _, ref = source.partition(":")
    if kind == "file" and ref:
        return load_server_key_file(ref)
    if kind == "credential" and ref:
        return load_server_key_credential(ref, environ)
    raise ServerKeyError('key source must be "file:/path" or "credential:<name>"')


class RetiredKeyId(UnknownKeyId):
    """The envelope names a retired (distrusted) server key: refused, never re-sealed."""


class ServerKeyRing:
    """Server keys by id; seals with the current id, opens with any trusted (non-retired) id."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str,
                 retired: Iterable[str] = ()) -> None:
        """Build a ring; every key must be 32 bytes, the current id loaded and not retired."""
        if current_key_id not in keys:
            raise ServerKeyError("current key id is not among the loaded keys")
        retired_ids = frozenset(retired)
        if current_key_id in retired_ids:
            raise ServerKeyError("the current key id cannot be retired")
        if unknown := sorted(retired_ids - set(keys)):
            raise ServerKeyError(f"retired key id(s) {', '.join(map(repr, unknown))} are not "
                                 "among the loaded keys")
        for key_id, key in keys.items():
            if key_id.startswith("umk-"):
                raise ServerKeyError('key ids starting with "umk-" are reserved')
            if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
                raise ServerKeyError(f"server key {key_id!r} must be 32 bytes")
        self._keys: dict[str, bytes] = {k: bytes(v) for k, v in keys.items()}
        self._current = current_key_id
        self._retired = retired_ids

    def __repr__(self) -> str:
        """Ids only, never key bytes."""
        return (f"ServerKeyRing(current={self._current!r}, key_ids={sorted(self._keys)!r}, "
                f"retired={sorted(self._retired)!r})")

    @property
    def current_key_id(self) -> str:
        """The id new envelopes are sealed under."""
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """All loaded ids, retired ones included."""
        return frozenset(self._keys)

    @property
    def trusted_key_ids(self) -> frozenset[str]:
        """The current id and every previous (trusted) id: what may still be opened."""
        return frozenset(self._keys) - self._retired

    @property
    def previous_key_ids(self) -> frozenset[str]:
        """Trusted ids other than the current one: accepted, migrated to the current on use."""
        return self.trusted_key_ids - {self._current}

    @property
    def retired_key_ids(self) -> frozenset[str]:
        """Distrusted ids: whatever is only under one of these is refused."""
        return self._retired

    def is_retired(self, key_id: str) -> bool:
        """Whether `key_id` names a retired key (refuse what verifies only under it)."""
        return key_id in self._retired

    def seal(self, plaintext: bytes, binding: Binding) -> str:
        """Seal under the current key's per-purpose key."""
        info = _SEAL_INFO + binding.purpose.encode("ascii")
        key = _derive(self._keys[self._current], info)
        return seal(key, self._current, plaintext, binding)

    def open(self, envelope: str, binding: Binding) -> bytes:
        """Open an envelope sealed under any trusted key id; a retired one is refused."""
        key_id = parse_header(envelope).key_id
        if key_id in self._retired:
            raise RetiredKeyId(f"server key id {key_id!r} is retired")
        server_key = self._keys.get(key_id)
        if server_key is None:
            raise UnknownKeyId(f"no server key loaded for key id {key_id!r}")
        key = _derive(server_key, _SEAL_INFO + binding.purpose.encode("ascii"))
        return open_envelope({key_id: key}, envelope, binding)

    def reencrypt(self, envelope: str, binding: Binding) -> str:
        """Return the envelope sealed under the current key (unchanged if it already is)."""
        if parse_header(envelope).key_id == self._current:
            return envelope
        return self.seal(self.open(envelope, binding), binding)

    def with_key(self, key_id: str, key: bytes, *, make_current: bool = False) -> ServerKeyRing:
        """A new ring with one more key (the first step of a rotation)."""
        if key_id in self._keys:
            raise ServerKeyError(f"key id {key_id!r} is already loaded")
        keys = {**self._keys, key_id: key}
        return ServerKeyRing(keys, key_id if make_current else self._current, self._retired)

    def retiring(self, key_id: str) -> ServerKeyRing:
        """A new ring in which `key_id` is retired (distrusted but still named in refusals)."""
        return ServerKeyRing(self._keys, self._current, self._retired | {key_id})

    def without(self, key_id: str) -> ServerKeyRing:
        """A new ring without `key_id` (the last step of a rotation); never the current key."""
        if key_id == self._current:
            raise ServerKeyError("cannot remove the current key id")
        if key_id not in self._keys:
            raise ServerKeyError(f"key id {key_id!r} is not loaded")
        return ServerKeyRing({k: v for k, v in self._keys.items() if k != key_id}, self._current,
                             self._retired - {key_id})

    def policy_keys(self) -> dict[str, bytes]:
        """HMAC keys for policy records, one per trusted server key id (see security.policy).

        Retired ids are left out, so a MAC under one verifies as an unknown key: refused and
        never re-signed.
        """
        return {kid: _derive(key, _POLICY_INFO) for kid, key in self._keys.items()
                if kid not in self._retired}

    def derived_keys(self, info: bytes) -> dict[str, bytes]:
        """One HKDF key per trusted server key id for a new MAC purpose (`info` names it);
        retired ids are left out, so a MAC under one is refused as an unknown key."""
        return {kid: _derive(key, info) for kid, key in self._keys.items()
                if kid not in self._retired}

    def retired_policy_keys(self) -> dict[str, bytes]:
        """Policy HMAC keys of retired ids only: to name a refusal, never to accept a MAC."""
        return {kid: _derive(self._keys[kid], _POLICY_INFO) for kid in self._retired}

    def webhook_peppers(self) -> dict[str, bytes]:
        """Peppers for legacy (v1) webhook secret hashes, one per trusted server key id."""
        return {kid: _derive(key, _WEBHOOK_INFO) for kid, key in self._keys.items()
                if kid not in self._retired}

    def secret_material(self) -> list[bytes]:
        """Raw and derived keys (retired ones included), only for the log redaction filter."""
        policy = [_derive(key, _POLICY_INFO) for key in self._keys.values()]
        peppers = [_derive(key, _WEBHOOK_INFO) for key in self._keys.values()]
        return [*self._keys.values(), *policy, *peppers]


def load_key_ring(
    sources: Mapping[str, str], current_key_id: str, environ: Mapping[str, str] | None = None,
    retired: Iterable[str] = (),
) -> ServerKeyRing:
    """Load every key id from its source reference ("file:..." / "credential:...")."""
    return ServerKeyRing({kid: load_key_source(src, environ) for kid, src in sources.items()},
                         current_key_id, retired)


@dataclass(frozen=True)
class SealedItem:
    """One stored envelope to rotate: `ref` is the caller's row handle, opaque here."""

    ref: Any
    envelope: str
    binding: Binding


@dataclass(frozen=True)
class RotationResult:
    """Envelopes that changed (write these back) and how many were already current."""

    updated: list[SealedItem]
    already_current: int


def reencrypt_all(ring: ServerKeyRing, items: Iterable[SealedItem]) -> RotationResult:
    """Re-seal every envelope not under the current key id; stops on the first refusal."""
    updated: list[SealedItem] = []
    current = 0
    for item in items:
        new = ring.reencrypt(item.envelope, item.binding)
        if new == item.envelope:
            current += 1
        else:
            updated.append(SealedItem(item.ref, new, item.binding))
    return RotationResult(updated=updated, already_current=current)


def key_ids_in_use(envelopes: Iterable[str]) -> set[str]:
    """Key ids still referenced by stored envelopes; an old key is removable when absent."""
    return {parse_header(text).key_id for text in envelopes}
