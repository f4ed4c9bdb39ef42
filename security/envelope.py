"""AES-256-GCM sealed envelope: the only format in which secrets are stored.

Binary layout (version 1), then base64url without padding so it fits a TEXT column:

    version:u8 = 1 | key_id_len:u8 | key_id (ASCII) | nonce (12 random bytes) | ciphertext+tag

Associated data = b"QuantumVault envelope\\0" + the header bytes (version, key id) + the
length-prefixed wallet address + the length-prefixed purpose. Binding the header means the key
id cannot be swapped; binding wallet and purpose means a ciphertext copied to another wallet's
row, or from the mnemonic column to the private-key column, fails to open.

Random 96-bit nonces are safe here: each key seals far fewer than 2**32 messages (one per agent
key, per bot, per rotation), which keeps the GCM nonce-collision bound negligible.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from security.errors import (
    EnvelopeAuthFailed,
    EnvelopeMalformed,
    InvalidKeyMaterial,
    UnknownEnvelopeVersion,
    UnknownKeyId,
)

ENVELOPE_VERSION = 1
NONCE_LEN = 12
TAG_LEN = 16
KEY_LEN = 32
_AD_DOMAIN = b"QuantumVault envelope\x00"
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}\Z")
_PURPOSE_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,200}\Z")

PURPOSE_AGENT_PRIVKEY = "agent_privkey"
PURPOSE_AGENT_MNEMONIC = "agent_mnemonic"


def purpose_umk_for_bot(bot_id: str | int) -> str:
    """The purpose string that binds a sealed UMK to exactly one bot."""
    return f"umk_for_bot:{bot_id}"


@dataclass(frozen=True)
class Binding:
    """What a ciphertext belongs to (wallet + purpose); authenticated as associated data."""

    wallet_address: str
    purpose: str

    def __post_init__(self) -> None:
        """Refuse empty or oddly shaped bindings, which would make AD ambiguous or useless."""
        if not self.wallet_address or not self.wallet_address.isascii():
            raise ValueError("binding wallet address must be non-empty ASCII")
        if not _PURPOSE_RE.match(self.purpose):
            raise ValueError("binding purpose must match [A-Za-z0-9._:-]{1,200}")


@dataclass(frozen=True)
class EnvelopeHeader:
    """The public part of an envelope: enough to pick a key or plan a rotation."""

    version: int
    key_id: str


def _check_key(key: bytes) -> None:
    """Refuse anything but a 32-byte AES-256 key."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise InvalidKeyMaterial("envelope key must be 32 bytes")


def _check_key_id(key_id: str) -> None:
    """Key ids are short ASCII labels so they can live in the header and in logs."""
    if not isinstance(key_id, str) or not _KEY_ID_RE.match(key_id):
        raise ValueError("key id must match [A-Za-z0-9._:-]{1,64}")


def _header_bytes(key_id: str) -> bytes:
    """Version byte, key id length, key id."""
    raw = key_id.encode("ascii")
    return struct.pack(">BB", ENVELOPE_VERSION, len(raw)) + raw


def _lp(data: bytes) -> bytes:
    """Two-byte length prefix so concatenated AD fields are unambiguous."""
    return struct.pack(">H", len(data)) + data


def _associated_data(header: bytes, binding: Binding) -> bytes:
    """Domain tag, header, wallet and purpose: everything the ciphertext is bound to."""
    return (
        _AD_DOMAIN
        + header
        + _lp(binding.wallet_address.encode("ascii"))
        + _lp(binding.purpose.encode("ascii"))
    )


def _b64e(data: bytes) -> str:
    """base64url without padding (text-safe, no '+' or '/')."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    """Strict inverse of _b64e; refuses characters outside the alphabet."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", text):
        raise EnvelopeMalformed("envelope is not base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeMalformed("envelope is not base64url text") from exc


def _split(text: str) -> tuple[EnvelopeHeader, bytes, bytes, bytes]:
    """Parse envelope text into header, header bytes, nonce and ciphertext+tag."""
    raw = _b64d(text)
    if len(raw) < 2:
        raise EnvelopeMalformed("envelope is too short")
    version, kid_len = raw[0], raw[1]
    if version != ENVELOPE_VERSION:
        raise UnknownEnvelopeVersion(f"unknown envelope version {version}")
    end_header = 2 + kid_len
    if kid_len == 0 or len(raw) < end_header + NONCE_LEN + TAG_LEN:
        raise EnvelopeMalformed("envelope is too short")
    try:
        key_id = raw[2:end_header].decode("ascii")
    except UnicodeDecodeError as exc:
        raise EnvelopeMalformed("envelope key id is not ASCII") from exc
    if not _KEY_ID_RE.match(key_id):
        raise EnvelopeMalformed("envelope key id has invalid characters")
    nonce = raw[end_header : end_header + NONCE_LEN]
    body = raw[end_header + NONCE_LEN :]
    return EnvelopeHeader(version, key_id), raw[:end_header], nonce, body


def parse_header(text: str) -> EnvelopeHeader:
    """Read version and key id without decrypting (rotation planning, key selection)."""
    return _split(text)[0]


def seal(key: bytes, key_id: str, plaintext: bytes, binding: Binding) -> str:
    """Encrypt and authenticate `plaintext` under `key`, bound to `binding`; returns text."""
    _check_key(key)
    _check_key_id(key_id)
    header = _header_bytes(key_id)
    nonce = os.urandom(NONCE_LEN)
    body = AESGCM(bytes(key)).encrypt(nonce, bytes(plaintext), _associated_data(header, binding))
    return _b64e(header + nonce + body)


def open_envelope(keys: Mapping[str, bytes], text: str, binding: Binding) -> bytes:
    """Decrypt an envelope with the key its header names; refuse on any mismatch or tamper."""
    header, header_raw, nonce, body = _split(text)
    key = keys.get(header.key_id)
    if key is None:
        raise UnknownKeyId(f"no key loaded for key id {header.key_id!r}")
    _check_key(key)
    try:
        return AESGCM(bytes(key)).decrypt(nonce, body, _associated_data(header_raw, binding))
    except InvalidTag as exc:
        raise EnvelopeAuthFailed(
            f"envelope did not authenticate for purpose {binding.purpose!r} "
            "(wrong key, wrong binding or tampered)"
        ) from exc
