"""Seal and open agent private keys and mnemonics: V3 (UMK sub-keys) and legacy (server key).

V3: the key id written into these envelopes names the derivation ("umk-v1.key_privkey"), not a
server key: opening needs the user's UMK, which the server only has while the user's session
is live or, for a bot with execution active, through `execution.open_umk_for_bot`.

Legacy: subscriber wallets' owners have no session while a signal is routed to them, so their agent
key is also sealed under the server key ring, with its own purpose label "agent_privkey_legacy" so
neither envelope can stand in for the other.
"""

from __future__ import annotations

from security.envelope import (
    PURPOSE_AGENT_MNEMONIC,
    PURPOSE_AGENT_PRIVKEY,
    Binding,
    open_envelope,
    seal,
)
from security.key_hierarchy import SubKeys
from security.server_key import ServerKeyRing

PRIVKEY_KEY_ID = "umk-v1.key_privkey"
MNEMONIC_KEY_ID = "umk-v1.key_mnemonic"
PURPOSE_AGENT_PRIVKEY_LEGACY = "agent_privkey_legacy"


def seal_agent_privkey(subkeys: SubKeys, agent_secret: bytes) -> str:
    """Seal an agent's 64-byte ed25519 keypair (or 32-byte seed) with key_privkey."""
    binding = Binding(subkeys.wallet_address, PURPOSE_AGENT_PRIVKEY)
    return seal(subkeys.key_privkey, PRIVKEY_KEY_ID, agent_secret, binding)


def open_agent_privkey(subkeys: SubKeys, envelope: str) -> bytes:
    """Open the agent key envelope of this wallet; refuses a foreign or tampered envelope."""
    binding = Binding(subkeys.wallet_address, PURPOSE_AGENT_PRIVKEY)
    return open_envelope({PRIVKEY_KEY_ID: subkeys.key_privkey}, envelope, binding)


def seal_agent_mnemonic(subkeys: SubKeys, mnemonic: str) -> str:
    """Seal an agent's seed phrase with key_mnemonic (separate key: separate blast radius)."""
    binding = Binding(subkeys.wallet_address, PURPOSE_AGENT_MNEMONIC)
    return seal(subkeys.key_mnemonic, MNEMONIC_KEY_ID, mnemonic.encode("utf-8"), binding)


def open_agent_mnemonic(subkeys: SubKeys, envelope: str) -> str:
    """Open the mnemonic envelope of this wallet."""
    binding = Binding(subkeys.wallet_address, PURPOSE_AGENT_MNEMONIC)
    raw = open_envelope({MNEMONIC_KEY_ID: subkeys.key_mnemonic}, envelope, binding)
    return raw.decode("utf-8")


def seal_agent_privkey_legacy(ring: ServerKeyRing, wallet_address: str, agent_secret: bytes) -> str:
    """Seal an agent key under the server key ring (subscriber / no-session path)."""
    return ring.seal(agent_secret, Binding(wallet_address, PURPOSE_AGENT_PRIVKEY_LEGACY))


def open_agent_privkey_legacy(ring: ServerKeyRing, wallet_address: str, envelope: str) -> bytes:
    """Open a legacy agent key envelope with whichever server key id it names."""
    return ring.open(envelope, Binding(wallet_address, PURPOSE_AGENT_PRIVKEY_LEGACY))
