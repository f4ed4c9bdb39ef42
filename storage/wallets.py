"""Wallet rows: an owner address, its agent key (the Drift authority) and the agent's envelopes.

`wallets.address` is the owner's wallet (the user's own Solana address, which signs the UMK
message); `agent_public_key` is the server-held agent that signs orders. Envelopes never leave
this module inside a `Wallet` (its fields are public data only); the legacy envelope is read
with `legacy_agent_envelope` by the one path that needs it (subscriber execution).

Key paths: a wallet whose agent key is sealed under its owner's UMK (V3) has
`has_v3_key`; such a wallet signs only through a bot's execution grant, and `wallet create` with
an owner signature no longer seals a server-key copy. A wallet with only the server-key
envelope is `legacy`. `key_path` names the two (and the transitional "v3+legacy": a V3 wallet
that still stores a server-key copy from before, never used to sign; `wallet upgrade` erases it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.bots import GrantRow
from storage.database import Database

_COLUMNS = (
    "address, agent_public_key, created_at, emergency_stop_triggered, emergency_stop_mode,"
    " agent_private_key_encrypted IS NOT NULL AS has_legacy_key,"
    " agent_private_key_encrypted_v3 IS NOT NULL AS has_v3_key"
)


@dataclass(frozen=True)
class Wallet:
    """Public facts about one wallet (no envelope, no key material)."""

    address: str
    agent_public_key: str
    has_legacy_key: bool
    has_v3_key: bool
    emergency_stop_triggered: bool
    emergency_stop_mode: str | None
    created_at: datetime

    @property
    def key_path(self) -> str:
        """"v3", "legacy", "v3+legacy" (a V3 wallet still storing a server-key copy) or "none"."""
        if self.has_v3_key:
            return "v3+legacy" if self.has_legacy_key else "v3"
        return "legacy" if self.has_legacy_key else "none"

    @property
    def is_v3(self) -> bool:
        """Signs only through execution grants (its agent key is sealed under the owner's UMK)."""
        return self.has_v3_key


def _wallet(row: dict[str, Any]) -> Wallet:
    """Row dict to Wallet."""
    return Wallet(**row)


def insert_wallet(
    db: Database,
    *,
    address: str,
    agent_public_key: str,
    legacy_envelope: str | None,
    v3_privkey_envelope: str | None = None,
    v3_mnemonic_envelope: str | None = None,
) -> Wallet:
    """Store a new wallet with its sealed agent key (server-key or V3, at least one); raises on
    a duplicate address or agent."""
    if legacy_envelope is None and v3_privkey_envelope is None:
        raise ValueError("a wallet needs its agent key sealed one way or the other")
    row = db.fetchone(
        "INSERT INTO wallets (address, agent_public_key, agent_private_key_encrypted,"
        " agent_private_key_encrypted_v3, agent_mnemonic_encrypted_v3)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (address, agent_public_key, legacy_envelope, v3_privkey_envelope, v3_mnemonic_envelope),
    )
    assert row is not None
    return _wallet(row)


def get_wallet(db: Database, address: str) -> Wallet | None:
    """The wallet whose owner address is `address`, or None."""
    row = db.fetchone(f"SELECT {_COLUMNS} FROM wallets WHERE address = %s", (address,))
    return _wallet(row) if row else None


def find_wallet(db: Database, address_or_agent: str) -> Wallet | None:
    """The wallet named by its owner address or, failing that, by its agent public key."""
    row = db.fetchone(
        f"SELECT {_COLUMNS} FROM wallets WHERE address = %s OR agent_public_key = %s"
        " ORDER BY (address = %s) DESC LIMIT 1",
        (address_or_agent, address_or_agent, address_or_agent),
    )
    return _wallet(row) if row else None


def wallet_exists(db: Database, address: str, agent_public_key: str) -> str | None:
    """Which of owner address / agent key is already taken ("address", "agent"), or None."""
    row = db.fetchone(
        "SELECT address = %s AS same_address FROM wallets"
        " WHERE address = %s OR agent_public_key = %s LIMIT 1",
        (address, address, agent_public_key),
    )
    if row is None:
        return None
    return "address" if row["same_address"] else "agent"



def legacy_agent_envelope(db: Database, address: str) -> str | None:
    """The agent key sealed under the server key ring (subscriber / no-session path)."""
    row = db.fetchone(
        "SELECT agent_private_key_encrypted AS envelope FROM wallets WHERE address = %s",
        (address,),
    )
    return row["envelope"] if row else None


def legacy_envelopes(db: Database) -> list[tuple[str, str]]:
    """(owner address, legacy envelope) of every wallet that has one: the rotation's input."""
    rows = db.fetchall(
        "SELECT address, agent_private_key_encrypted AS envelope FROM wallets"
        " WHERE agent_private_key_encrypted IS NOT NULL ORDER BY address"
    )
    return [(r["address"], r["envelope"]) for r in rows]


def replace_legacy_envelope(db: Database, address: str, old: str, new: str) -> bool:
    """Compare-and-swap the legacy envelope; False if the row changed meanwhile."""
    return db.execute(
        "UPDATE wallets SET agent_private_key_encrypted = %s, updated_at = now()"
        " WHERE address = %s AND agent_private_key_encrypted = %s",
        (new, address, old),
    ) == 1


def list_wallets(db: Database) -> list[Wallet]:
    """Every wallet, oldest first (public facts only)."""
    rows = db.fetchall(f"SELECT {_COLUMNS} FROM wallets ORDER BY created_at, address")
    return [_wallet(r) for r in rows]


@dataclass(frozen=True)
class WalletKeys:
    """A wallet's agent envelopes, for the one module that opens signing keys."""

    address: str
    agent_public_key: str
    legacy_envelope: str | None = field(repr=False)
    v3_envelope: str | None = field(repr=False)


def wallet_keys(db: Database, address: str) -> WalletKeys | None:
    """The wallet's agent envelopes (custody.signing_keys is the only reader)."""
    row = db.fetchone(
        "SELECT address, agent_public_key, agent_private_key_encrypted AS legacy_envelope,"
        " agent_private_key_encrypted_v3 AS v3_envelope FROM wallets WHERE address = %s",
        (address,),
    )
    return WalletKeys(**row) if row else None


SigningRows = tuple[GrantRow | None, WalletKeys | None]

# a bot's grant and its wallet's envelopes, from trading_bots b LEFT JOIN wallets w
SIGNING_COLUMNS = (
    "b.id AS bot_id, b.wallet_address, b.execution_active,"
    " b.execution_expires_at AS expires_at, b.umk_encrypted_for_bot AS envelope,"
    " b.execution_grant_mac AS grant_mac, b.execution_granted_at AS granted_at,"
    " b.execution_revoked_at AS revoked_at, w.address, w.agent_public_key,"
    " w.agent_private_key_encrypted AS legacy_envelope,"
    " w.agent_private_key_encrypted_v3 AS v3_envelope")
_GRANT_NAMES = ("bot_id", "wallet_address", "execution_active", "expires_at", "envelope",
                "grant_mac", "granted_at", "revoked_at")
_KEY_NAMES = ("address", "agent_public_key", "legacy_envelope", "v3_envelope")


def signing_rows_of(row: dict[str, Any]) -> SigningRows:
    """The SIGNING_COLUMNS of a row: (None, None) for no bot, (grant, None) for a wallet that
    is gone."""
    if row["bot_id"] is None:
        return None, None
    keys = {name: row[name] for name in _KEY_NAMES}
    return (GrantRow(**{name: row[name] for name in _GRANT_NAMES}),
            WalletKeys(**keys) if keys["address"] is not None else None)


def signing_rows(db: Database, bot_id: str) -> SigningRows:
    """A bot's grant and its wallet's agent envelopes, read together right before a signature
    (one round trip; a claimed signal has them from its claim: storage.signals.claim_next_many)."""
    row = db.fetchone(
        f"SELECT {SIGNING_COLUMNS}"
        " FROM trading_bots b LEFT JOIN wallets w ON w.address = b.wallet_address"
        " WHERE b.id = %s",
        (bot_id,),
    )
    return (None, None) if row is None else signing_rows_of(row)


def upgrade_to_v3(db: Database, address: str, legacy: str | None, v3: str) -> bool:
    """Store the V3 envelope and erase the server-key copy, compare-and-swap on the legacy
    envelope the caller opened; False if the row changed meanwhile."""
    return db.execute(
        "UPDATE wallets SET agent_private_key_encrypted_v3 = %s,"
        " agent_private_key_encrypted = NULL, updated_at = now()"
        " WHERE address = %s AND agent_private_key_encrypted IS NOT DISTINCT FROM %s",
        (v3, address, legacy),
    ) == 1
