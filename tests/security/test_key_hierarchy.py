"""Known-answer tests for the UMK and sub-key derivation, and refusal of a wrong signer."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from security.errors import InvalidKeyMaterial, SignatureRefused
from security.key_hierarchy import (
    derive_subkeys,
    derive_umk,
    parse_signature,
    umk_from_bytes,
    umk_message,
    verify_wallet_signature,
)
from tests.security.helpers import OTHER_SEED, WALLET_SEED, wallet

# Frozen vectors. Computed once (2026-11-21) by running derive_umk / derive_subkeys on the
# wallet whose ed25519 seed is bytes(range(32)); they equal the step-by-step computation below.
# If a label, the message, the salt or the info changes, these fail: that must be a new version.
FROZEN_ADDRESS = "FAe4sisG95oZ42w7buUn5qEE4TAnfTTFPiguZUHmhiF"
FROZEN_SIGNATURE = (
    "c6c94ee8ffa8c8ea961beeef07c1a699d1919200cfe0e09a3fd8e616b3ce4068"
    "1bdf423daf0881a450d0c2c446dc045c1b9f2d036fe30e4a0879ba3490c2050c"
)
FROZEN_UMK = "5bda72b6d0915f337375937e2d2647c83148a4c5abf729cf27ce929b18a2455c"
FROZEN_SUBKEYS = {
    "key_privkey": "1456e736ca34cbebe8a224cc3207ff9b98f97c4f7f82ef4b877973f7bae2ac66",
    "key_mnemonic": "28ff178ebf3b0e06e9e828fdfdfaad9b509b671acb149ffb2fcd09b0a70d6ae5",
    "key_execution": "f3f479cb678636842d99f43be04e895f51a02753a421a9f517a4960aa4acaa20",
}


def _hmac(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 with the cryptography primitive."""
    mac = chmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hkdf_by_hand(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 for L=32: PRK = HMAC(salt or zeros, IKM); OKM = HMAC(PRK, info || 0x01)."""
    prk = _hmac(salt if salt else b"\x00" * 32, ikm)
    return _hmac(prk, info + b"\x01")


def _sign(seed: bytes, message: bytes) -> bytes:
    """Sign with the cryptography ed25519 implementation (independent of solders)."""
    return Ed25519PrivateKey.from_private_bytes(seed).sign(message)


def test_message_is_versioned_and_wallet_bound() -> None:
    _, address = wallet()
    assert umk_message(address) == b"QuantumVault UMK v1\n" + address.encode()


def test_signature_is_deterministic_and_matches_frozen_vector() -> None:
    kp, address = wallet()
    assert address == FROZEN_ADDRESS
    message = umk_message(address)
    assert bytes(kp.sign_message(message)).hex() == FROZEN_SIGNATURE
    assert _sign(WALLET_SEED, message).hex() == FROZEN_SIGNATURE


def test_umk_and_subkeys_match_step_by_step_hkdf() -> None:
    _, address = wallet()
    message = umk_message(address)
    signature = _sign(WALLET_SEED, message)
    expected_umk = _hkdf_by_hand(signature, message, b"QuantumVault v1 umk")
    umk = derive_umk(address, signature)
    assert umk.key == expected_umk
    subkeys = derive_subkeys(umk)
    for name in ("key_privkey", "key_mnemonic", "key_execution"):
        label = f"QuantumVault v1 {name}\n".encode() + address.encode()
        assert getattr(subkeys, name) == _hkdf_by_hand(expected_umk, b"", label), name


def test_umk_and_subkeys_match_frozen_vectors() -> None:
    umk = derive_umk(FROZEN_ADDRESS, bytes.fromhex(FROZEN_SIGNATURE))
    assert umk.key.hex() == FROZEN_UMK
    subkeys = derive_subkeys(umk)
    assert {n: getattr(subkeys, n).hex() for n in FROZEN_SUBKEYS} == FROZEN_SUBKEYS


def test_subkeys_are_distinct_and_wallet_specific() -> None:
    kp, address = wallet()
    other_kp, other = wallet(OTHER_SEED)
    a = derive_subkeys(derive_umk(address, bytes(kp.sign_message(umk_message(address)))))
    b = derive_subkeys(derive_umk(other, bytes(other_kp.sign_message(umk_message(other)))))
    keys = [a.key_privkey, a.key_mnemonic, a.key_execution, b.key_privkey, b.key_mnemonic]
    assert len(set(keys)) == len(keys)


def test_wrong_signer_is_refused() -> None:
    _, address = wallet()
    other_kp, _ = wallet(OTHER_SEED)
    forged = bytes(other_kp.sign_message(umk_message(address)))
    with pytest.raises(SignatureRefused):
        derive_umk(address, forged)


def test_signature_over_other_message_is_refused() -> None:
    kp, address = wallet()
    sig = bytes(kp.sign_message(b"QuantumVault UMK v2\n" + address.encode()))
    with pytest.raises(SignatureRefused):
        verify_wallet_signature(address, sig)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 63, b"\x00" * 65])
def test_malformed_signature_is_refused(bad: bytes) -> None:
    _, address = wallet()
    with pytest.raises(SignatureRefused):
        derive_umk(address, bad)


@pytest.mark.parametrize("address", ["", "not-base58!", "1111", FROZEN_ADDRESS + "1"])
def test_malformed_wallet_is_refused(address: str) -> None:
    with pytest.raises(SignatureRefused):
        derive_umk(address, bytes.fromhex(FROZEN_SIGNATURE))


def test_repr_hides_key_bytes() -> None:
    umk = derive_umk(FROZEN_ADDRESS, bytes.fromhex(FROZEN_SIGNATURE))
    subkeys = derive_subkeys(umk)
    for text in (repr(umk), repr(subkeys), str(umk), str(subkeys)):
        assert FROZEN_UMK not in text
        for value in FROZEN_SUBKEYS.values():
            assert value not in text
        assert "key=" not in text


def test_umk_from_bytes_refuses_wrong_length() -> None:
    with pytest.raises(InvalidKeyMaterial):
        umk_from_bytes(FROZEN_ADDRESS, b"\x00" * 31)


def test_parse_signature_forms() -> None:
    from solders.signature import Signature

    raw = bytes.fromhex(FROZEN_SIGNATURE)
    assert parse_signature(FROZEN_SIGNATURE) == raw
    assert parse_signature(str(Signature.from_bytes(raw))) == raw
    for bad in ("", "xyz", FROZEN_SIGNATURE[:-2], "0" * 88):
        with pytest.raises(SignatureRefused):
            parse_signature(bad)
