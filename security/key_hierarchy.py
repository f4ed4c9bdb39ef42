"""User master key (UMK) and its sub-keys, derived from a wallet signature with HKDF-SHA256.

Why this shape: ed25519 signatures are deterministic, so the wallet owner re-creates the same
UMK every time they sign the fixed message, and the server never stores the UMK in the clear.
The message and every HKDF info label carry a version ("v1"): changing the derivation means a
new version, never a silent change of the keys that protect existing envelopes.

Derivation (all HKDF-SHA256, 32-byte outputs):
    message      = b"QuantumVault UMK v1\\n" + wallet_address (base58, UTF-8)
    signature    = ed25519 signature of `message` by the wallet, verified before use
    UMK          = HKDF(ikm=signature, salt=message, info=b"QuantumVault v1 umk")
    key_privkey  = HKDF(ikm=UMK, salt=b"", info=b"QuantumVault v1 key_privkey\\n" + wallet)
    key_mnemonic = HKDF(ikm=UMK, salt=b"", info=b"QuantumVault v1 key_mnemonic\\n" + wallet)
    key_execution= HKDF(ikm=UMK, salt=b"", info=b"QuantumVault v1 key_execution\\n" + wallet)

Caveat carried by the design (not fixable here): whoever sees the signature can derive the UMK,
so the signature must be treated as a secret by the client and never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from solders.pubkey import Pubkey
from solders.signature import Signature

from security.errors import InvalidKeyMaterial, SignatureRefused

UMK_VERSION = 1
UMK_MESSAGE_PREFIX = b"QuantumVault UMK v1\n"
UMK_INFO = b"QuantumVault v1 umk"
KEY_LEN = 32

SUBKEY_LABELS: dict[str, bytes] = {
    "key_privkey": b"QuantumVault v1 key_privkey\n",
    "key_mnemonic": b"QuantumVault v1 key_mnemonic\n",
    "key_execution": b"QuantumVault v1 key_execution\n",
}


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """One HKDF-SHA256 call with a 32-byte output; the single derivation primitive here."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=salt, info=info).derive(ikm)


@dataclass(frozen=True)
class UserMasterKey:
    """The UMK of one wallet; the key bytes never appear in repr."""

    wallet_address: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class SubKeys:
    """The three purpose keys derived from a UMK; none of them appears in repr."""

    wallet_address: str
    key_privkey: bytes = field(repr=False)
    key_mnemonic: bytes = field(repr=False)
    key_execution: bytes = field(repr=False)


def umk_message(wallet_address: str) -> bytes:
    """The exact bytes the wallet must sign to unlock its UMK (versioned, wallet-bound)."""
    _parse_wallet(wallet_address)
    return UMK_MESSAGE_PREFIX + wallet_address.encode("ascii")


def _parse_wallet(wallet_address: str) -> Pubkey:
    """Parse a base58 wallet address, refusing anything that is not a 32-byte public key."""
    try:
        pubkey = Pubkey.from_string(wallet_address)
    except (ValueError, TypeError) as exc:
        raise SignatureRefused("wallet address is not a valid public key") from exc
    if str(pubkey) != wallet_address:
        raise SignatureRefused("wallet address is not in canonical base58 form")
    return pubkey


def verify_wallet_signature(wallet_address: str, signature: bytes) -> None:
    """Refuse (SignatureRefused) unless `signature` is the wallet's ed25519 signature of the
    UMK message; called before any derivation so a wrong signer never yields a key."""
    pubkey = _parse_wallet(wallet_address)
    if len(signature) != 64:
        raise SignatureRefused("signature must be 64 bytes")
    sig = Signature.from_bytes(bytes(signature))
    if not sig.verify(pubkey, umk_message(wallet_address)):
        raise SignatureRefused("signature does not verify for this wallet")


def parse_signature(text: str) -> bytes:
    """Signature text from a wallet or the CLI: base58 (Solana's form) or 128 hex chars."""
    text = text.strip()
    if len(text) == 128 and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    try:
        return bytes(Signature.from_string(text))
    except (ValueError, TypeError) as exc:
        raise SignatureRefused("signature is neither base58 nor 128 hex characters") from exc


def derive_umk(wallet_address: str, signature: bytes) -> UserMasterKey:
    """Verify the wallet's signature of the UMK message, then derive the UMK from it."""
    verify_wallet_signature(wallet_address, signature)
    key = _hkdf(bytes(signature), umk_message(wallet_address), UMK_INFO)
    return UserMasterKey(wallet_address=wallet_address, key=key)


def derive_subkeys(umk: UserMasterKey) -> SubKeys:
    """Derive key_privkey, key_mnemonic and key_execution, each bound to label and wallet."""
    wallet = umk.wallet_address.encode("ascii")
    keys = {name: _hkdf(umk.key, b"", label + wallet) for name, label in SUBKEY_LABELS.items()}
    return SubKeys(wallet_address=umk.wallet_address, **keys)


def umk_from_bytes(wallet_address: str, key: bytes) -> UserMasterKey:
    """Rebuild a UMK from bytes recovered from a sealed envelope (umk_for_bot path)."""
    if len(key) != KEY_LEN:
        raise InvalidKeyMaterial("UMK must be 32 bytes")
    _parse_wallet(wallet_address)
    return UserMasterKey(wallet_address=wallet_address, key=bytes(key))
