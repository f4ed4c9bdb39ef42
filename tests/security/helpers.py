"""Shared fixtures for the security tests: a fixed wallet, fixed keys, a server key ring."""

from __future__ import annotations

from solders.keypair import Keypair

from security.key_hierarchy import SubKeys, derive_subkeys, derive_umk, umk_message
from security.server_key import ServerKeyRing

WALLET_SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))
SERVER_KEY_OLD = bytes.fromhex("11" * 32)
SERVER_KEY_NEW = bytes.fromhex("22" * 32)


def wallet(seed: bytes = WALLET_SEED) -> tuple[Keypair, str]:
    """A deterministic wallet keypair and its base58 address."""
    kp = Keypair.from_seed(seed)
    return kp, str(kp.pubkey())


def subkeys(seed: bytes = WALLET_SEED) -> SubKeys:
    """Sub-keys of the wallet with the given seed, through the real signature path."""
    kp, address = wallet(seed)
    signature = bytes(kp.sign_message(umk_message(address)))
    return derive_subkeys(derive_umk(address, signature))


def ring(current: str = "k-old") -> ServerKeyRing:
    """A ring with an old and a new key, either one current."""
    return ServerKeyRing({"k-old": SERVER_KEY_OLD, "k-new": SERVER_KEY_NEW}, current)
