"""Sealed envelope: round trip, and typed refusal on every kind of tamper or mismatch."""

from __future__ import annotations

import base64

import pytest

from security.agent_keys import (
    open_agent_mnemonic,
    open_agent_privkey,
    open_agent_privkey_legacy,
    seal_agent_mnemonic,
    seal_agent_privkey,
    seal_agent_privkey_legacy,
)
from security.envelope import (
    PURPOSE_AGENT_MNEMONIC,
    PURPOSE_AGENT_PRIVKEY,
    Binding,
    open_envelope,
    parse_header,
    seal,
)
from security.errors import (
    EnvelopeAuthFailed,
    EnvelopeError,
    EnvelopeMalformed,
    InvalidKeyMaterial,
    UnknownEnvelopeVersion,
    UnknownKeyId,
)
from tests.security.helpers import OTHER_SEED, ring, subkeys, wallet

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AGENT_SECRET = bytes(range(200, 256)) + bytes(8)  # 64 bytes


def _raw(text: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _binding(purpose: str = PURPOSE_AGENT_PRIVKEY) -> Binding:
    return Binding(wallet()[1], purpose)


def test_round_trip_and_text_safe() -> None:
    text = seal(KEY, "k1", AGENT_SECRET, _binding())
    assert text.isascii() and all(c.isalnum() or c in "-_" for c in text)
    assert open_envelope({"k1": KEY}, text, _binding()) == AGENT_SECRET
    assert parse_header(text).key_id == "k1"
    assert parse_header(text).version == 1


def test_nonce_is_random() -> None:
    assert seal(KEY, "k1", b"x" * 10, _binding()) != seal(KEY, "k1", b"x" * 10, _binding())


def test_layout_is_version_keyid_nonce_body() -> None:
    raw = _raw(seal(KEY, "k1", b"abc", _binding()))
    assert raw[0] == 1 and raw[1] == 2 and raw[2:4] == b"k1"
    assert len(raw) == 4 + 12 + 3 + 16


@pytest.mark.parametrize("where", ["nonce", "body", "tag"])
def test_flipped_bit_is_refused(where: str) -> None:
    raw = _raw(seal(KEY, "k1", AGENT_SECRET, _binding()))
    index = {"nonce": 5, "body": 4 + 12 + 3, "tag": len(raw) - 1}[where]
    raw[index] ^= 0x01
    with pytest.raises(EnvelopeAuthFailed):
        open_envelope({"k1": KEY}, _text(raw), _binding())


def test_swapped_key_id_is_refused_even_with_the_right_key() -> None:
    raw = _raw(seal(KEY, "k1", AGENT_SECRET, _binding()))
    raw[3] = ord("2")  # header now says "k2"
    with pytest.raises(EnvelopeAuthFailed):
        open_envelope({"k2": KEY}, _text(raw), _binding())


def test_wrong_purpose_is_refused() -> None:
    text = seal(KEY, "k1", AGENT_SECRET, _binding())
    with pytest.raises(EnvelopeAuthFailed):
        open_envelope({"k1": KEY}, text, _binding(PURPOSE_AGENT_MNEMONIC))


def test_wrong_wallet_is_refused() -> None:
    text = seal(KEY, "k1", AGENT_SECRET, _binding())
    with pytest.raises(EnvelopeAuthFailed):
        open_envelope({"k1": KEY}, text, Binding(wallet(OTHER_SEED)[1], PURPOSE_AGENT_PRIVKEY))


def test_wrong_key_is_refused() -> None:
    text = seal(KEY, "k1", AGENT_SECRET, _binding())
    with pytest.raises(EnvelopeAuthFailed):
        open_envelope({"k1": OTHER_KEY}, text, _binding())


def test_unknown_key_id_is_refused() -> None:
    text = seal(KEY, "k1", AGENT_SECRET, _binding())
    with pytest.raises(UnknownKeyId):
        open_envelope({"k9": KEY}, text, _binding())


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version_is_refused(version: int) -> None:
    raw = _raw(seal(KEY, "k1", AGENT_SECRET, _binding()))
    raw[0] = version
    with pytest.raises(UnknownEnvelopeVersion):
        open_envelope({"k1": KEY}, _text(raw), _binding())


@pytest.mark.parametrize("text", ["", "!!!", "AQ", _text(b"\x01\x02k1" + b"\x00" * 20), "a b"])
def test_malformed_is_refused(text: str) -> None:
    with pytest.raises(EnvelopeMalformed):
        open_envelope({"k1": KEY}, text, _binding())


def test_bad_key_length_is_refused() -> None:
    with pytest.raises(InvalidKeyMaterial):
        seal(b"short", "k1", b"x", _binding())


def test_error_messages_carry_no_material() -> None:
    text = seal(KEY, "k1", AGENT_SECRET, _binding())
    with pytest.raises(EnvelopeError) as info:
        open_envelope({"k1": OTHER_KEY}, text, _binding())
    message = str(info.value) + repr(info.value)
    for secret in (KEY.hex(), OTHER_KEY.hex(), AGENT_SECRET.hex(), text):
        assert secret not in message


def test_agent_privkey_and_mnemonic_round_trip_under_subkeys() -> None:
    keys = subkeys()
    sealed_key = seal_agent_privkey(keys, AGENT_SECRET)
    mnemonic = "abandon " * 11 + "about"
    sealed_words = seal_agent_mnemonic(keys, mnemonic)
    assert open_agent_privkey(keys, sealed_key) == AGENT_SECRET
    assert open_agent_mnemonic(keys, sealed_words) == mnemonic


def test_agent_envelopes_refuse_wrong_umk() -> None:
    keys, other = subkeys(), subkeys(OTHER_SEED)
    with pytest.raises(EnvelopeAuthFailed):
        open_agent_privkey(other, seal_agent_privkey(keys, AGENT_SECRET))


def test_privkey_envelope_does_not_open_as_mnemonic() -> None:
    keys = subkeys()
    sealed = seal_agent_privkey(keys, b"word " * 4)
    with pytest.raises(EnvelopeError):
        open_agent_mnemonic(keys, sealed)


def test_legacy_agent_key_under_server_ring() -> None:
    address = wallet()[1]
    sealed = seal_agent_privkey_legacy(ring("k-old"), address, AGENT_SECRET)
    assert open_agent_privkey_legacy(ring("k-new"), address, sealed) == AGENT_SECRET
    with pytest.raises(EnvelopeAuthFailed):
        open_agent_privkey_legacy(ring(), wallet(OTHER_SEED)[1], sealed)
    # A V3 envelope is not a legacy one and vice versa.
    with pytest.raises(EnvelopeError):
        open_agent_privkey_legacy(ring(), address, seal_agent_privkey(subkeys(), AGENT_SECRET))
    with pytest.raises(EnvelopeError):
        open_agent_privkey(subkeys(), sealed)
