"""Trading bot rows: market, limits, activity, and the authenticated fields the gate checks.

`max_position_size` is the bot's largest position in USD notional (the CLI's
`--max-position-usd`). The webhook secret hash and the policy HMAC are on `Bot` because the
webhook actor and the trade guard need them; they are excluded from its repr, and the CLI's
list/show never print them. `umk_encrypted_for_bot` is never loaded into a `Bot`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from prometheus_client import Counter

from security.policy import BotPolicy
from storage.database import Database
from storage.secret_cache import SecretCache

log = logging.getLogger(__name__)

WEBHOOK_HASHES_UPGRADED = Counter(
    "webhook_secret_hashes_upgraded",
    "Webhook secret hashes re-made on use: bound to their bot under the current server key")

BOT_COLUMNS = (
    "id, wallet_address, name, market, market_index, leverage, max_position_size,"
    " drift_subaccount_id, is_active, paused_reason, source_published_bot_id, execution_active,"
    " execution_expires_at, swift_enabled, swift_fallback_enabled, created_at, paused_by,"
    " webhook_secret_hash, policy_hmac"
)


@dataclass(frozen=True)
class Bot:
    """One trading bot as stored (without its sealed UMK)."""

    id: str
    wallet_address: str
    name: str
    market: str
    market_index: int
    leverage: Decimal
    max_position_size: Decimal
    drift_subaccount_id: int
    is_active: bool
    paused_reason: str | None
    source_published_bot_id: str | None
    execution_active: bool
    execution_expires_at: datetime | None
    swift_enabled: bool
    swift_fallback_enabled: bool
    created_at: datetime
    paused_by: str | None = None  # 'system' (closes still run) | 'operator' | None (active)
    webhook_secret_hash: str | None = field(default=None, repr=False)
    policy_hmac: str | None = field(default=None, repr=False)

    @property
    def policy(self) -> BotPolicy:
        """The fields the policy HMAC covers."""
        return BotPolicy(self.id, self.market, self.leverage, self.max_position_size)

    @property
    def closes_only(self) -> bool:
        """Paused by the system: its reduce-only closes still run (an operator's pause, or a
        pause of unknown origin, stops everything)."""
        return not self.is_active and self.paused_by == "system"

    @property
    def is_subscriber(self) -> bool:
        """True for a copy-trading bot that follows a published bot."""
        return self.source_published_bot_id is not None


def bot_from_row(row: dict[str, Any]) -> Bot:
    """Row dict to Bot."""
    return Bot(**row)


def insert_bot(
    db: Database,
    *,
    bot_id: str,
    wallet_address: str,
    name: str,
    market: str,
    market_index: int,
    leverage: Decimal,
    max_position_size: Decimal,
    webhook_secret_hash: str | None,
    policy_hmac: str,
    source_published_bot_id: str | None = None,
    drift_subaccount_id: int = 0,
) -> Bot:
    """Store a new bot; the caller computed its policy HMAC over these exact values and
    allocated its sub-account (storage.subaccounts; unique per wallet)."""
    row = db.fetchone(
        "INSERT INTO trading_bots (id, wallet_address, name, market, market_index, leverage,"
        " max_position_size, webhook_secret_hash, policy_hmac, source_published_bot_id,"
        " drift_subaccount_id)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {BOT_COLUMNS}",
        (bot_id, wallet_address, name, market, market_index, leverage, max_position_size,
         webhook_secret_hash, policy_hmac, source_published_bot_id, drift_subaccount_id),
    )
    assert row is not None
    return bot_from_row(row)


def get_bot(db: Database, bot_id: str) -> Bot | None:
    """The bot with this id, or None."""
    row = db.fetchone(f"SELECT {BOT_COLUMNS} FROM trading_bots WHERE id = %s", (bot_id,))
    return bot_from_row(row) if row else None


def list_bots(db: Database, wallet_address: str | None = None) -> list[Bot]:
    """Every bot (or one wallet's), oldest first."""
    if wallet_address is None:
        rows = db.fetchall(f"SELECT {BOT_COLUMNS} FROM trading_bots ORDER BY created_at, id")
    else:
        rows = db.fetchall(
            f"SELECT {BOT_COLUMNS} FROM trading_bots WHERE wallet_address = %s"
            " ORDER BY created_at, id",
            (wallet_address,),
        )
    return [bot_from_row(r) for r in rows]


def set_webhook_secret_hash(db: Database, bot_id: str, stored_hash: str) -> bool:
    """Replace the webhook secret hash (`bot rotate-secret`); False if no such bot."""
    return db.execute(
        "UPDATE trading_bots SET webhook_secret_hash = %s, updated_at = now() WHERE id = %s",
        (stored_hash, bot_id),
    ) == 1



def replace_policy_hmac(db: Database, bot: Bot, new_hmac: str) -> bool:
    """Compare-and-swap the policy HMAC; only if HMAC and every covered field are unchanged."""
    return db.execute(
        "UPDATE trading_bots SET policy_hmac = %s, updated_at = now()"
        " WHERE id = %s AND policy_hmac IS NOT DISTINCT FROM %s AND market = %s"
        " AND leverage = %s AND max_position_size = %s",
        (new_hmac, bot.id, bot.policy_hmac, bot.market, bot.leverage, bot.max_position_size),
    ) == 1


def webhook_hash_key_ids(db: Database) -> dict[str, int]:
    """How many webhook secret hashes name each server key id (rotation report)."""
    rows = db.fetchall(
        "SELECT split_part(webhook_secret_hash, '.', 2) AS key_id, count(*) AS n"
        " FROM trading_bots WHERE webhook_secret_hash IS NOT NULL GROUP BY 1"
    )
    return {r["key_id"]: int(r["n"]) for r in rows}


def umk_envelopes(db: Database) -> list[tuple[str, str, str]]:
    """(bot id, wallet address, sealed UMK) of every bot that has one: the rotation's input."""
    rows = db.fetchall(
        "SELECT id, wallet_address, umk_encrypted_for_bot AS envelope FROM trading_bots"
        " WHERE umk_encrypted_for_bot IS NOT NULL ORDER BY id"
    )
    return [(r["id"], r["wallet_address"], r["envelope"]) for r in rows]


def umk_envelope(db: Database, bot_id: str) -> str | None:
    """The bot's sealed UMK (execution while the user is away), or None."""
    row = db.fetchone(
        "SELECT umk_encrypted_for_bot AS envelope FROM trading_bots WHERE id = %s", (bot_id,)
    )
    return row["envelope"] if row else None


def replace_umk_envelope(db: Database, bot_id: str, old: str, new: str) -> bool:
    """Compare-and-swap the sealed UMK; False if the row changed meanwhile."""
    return db.execute(
        "UPDATE trading_bots SET umk_encrypted_for_bot = %s, updated_at = now()"
        " WHERE id = %s AND umk_encrypted_for_bot = %s",
        (new, bot_id, old),
    ) == 1


# --- execution grants -------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantRow:
    """A bot's stored execution grant: flag, expiry, sealed UMK and the owner's MAC."""

    bot_id: str
    wallet_address: str
    execution_active: bool
    expires_at: datetime | None
    envelope: str | None = field(repr=False)
    grant_mac: str | None = field(repr=False)
    granted_at: datetime | None = None
    revoked_at: datetime | None = None


def grant_row(db: Database, bot_id: str) -> GrantRow | None:
    """The bot's grant as stored (read fresh before every signature), or None for no bot."""
    row = db.fetchone(
        "SELECT id AS bot_id, wallet_address, execution_active,"
        " execution_expires_at AS expires_at, umk_encrypted_for_bot AS envelope,"
        " execution_grant_mac AS grant_mac, execution_granted_at AS granted_at,"
        " execution_revoked_at AS revoked_at FROM trading_bots WHERE id = %s",
        (bot_id,),
    )
    return GrantRow(**row) if row else None


def store_grant(db: Database, bot_id: str, envelope: str, grant_mac: str,
                expires_at: datetime) -> bool:
    """Authorize execution: store the sealed UMK, its MAC and expiry (replaces any grant)."""
    return db.execute(
        "UPDATE trading_bots SET umk_encrypted_for_bot = %s, execution_grant_mac = %s,"
        " execution_expires_at = %s, execution_active = true, execution_granted_at = now(),"
        " execution_revoked_at = NULL, updated_at = now() WHERE id = %s",
        (envelope, grant_mac, expires_at, bot_id),
    ) == 1


def revoke_grant(db: Database, bot_id: str) -> bool:
    """Erase the sealed UMK and its MAC: without them the server cannot reach the agent key."""
    return db.execute(
        "UPDATE trading_bots SET umk_encrypted_for_bot = NULL, execution_grant_mac = NULL,"
        " execution_active = false, execution_revoked_at = now(), updated_at = now()"
        " WHERE id = %s",
        (bot_id,),
    ) == 1


_NET_POSITION = (
    "(SELECT COALESCE(sum(CASE WHEN t.side = 'long' THEN t.filled_size"
    " ELSE -t.filled_size END), 0) FROM bot_trades t"
    " WHERE t.trading_bot_id = b.id AND t.filled_size > 0)"
)


def v3_grant_states(db: Database) -> list[dict[str, Any]]:
    """Every bot of a V3 wallet: grant expiry, whether it is usable now, net position (base,
    from the bot's own fills), for `bot status`, the metrics and the expiry alert."""
    return db.fetchall(
        "SELECT b.id AS bot_id, b.wallet_address, b.execution_expires_at AS expires_at,"
        " (b.umk_encrypted_for_bot IS NOT NULL AND b.execution_active"
        "  AND b.execution_expires_at > now()) AS granted,"
        " EXTRACT(EPOCH FROM (b.execution_expires_at - now()))::float8 AS seconds_left,"
        f" {_NET_POSITION} AS net_position"
        " FROM trading_bots b JOIN wallets w ON w.address = b.wallet_address"
        " WHERE w.agent_private_key_encrypted_v3 IS NOT NULL ORDER BY b.created_at, b.id"
    )


# --- webhook secret hash rotation (hashes bound to their bot, rehashed on use) ----------------

def webhook_secret_hashes(db: Database) -> list[tuple[str, str]]:
    """(bot id, stored hash) of every bot with a webhook secret hash: the rotation's input."""
    rows = db.fetchall(
        "SELECT id, webhook_secret_hash FROM trading_bots"
        " WHERE webhook_secret_hash IS NOT NULL ORDER BY id"
    )
    return [(r["id"], r["webhook_secret_hash"]) for r in rows]


def replace_webhook_secret_hash(db: Database, bot_id: str, old_hash: str, new_hash: str) -> bool:
    """Compare-and-swap the webhook secret hash (rehash on use, `keys reencrypt`); False when the
    row changed meanwhile (e.g. `bot rotate-secret`), which then wins."""
    return db.execute(
        "UPDATE trading_bots SET webhook_secret_hash = %s"
        " WHERE id = %s AND webhook_secret_hash = %s",
        (new_hash, bot_id, old_hash),
    ) == 1


def upgrade_stored_hash(db: Database, bot_id: str, old_hash: str | None, new_hash: str,
                        cache: SecretCache | None = None) -> str | None:
    """Store a rehash-on-use result with compare-and-swap; returns the hash now in force.

    A row changed meanwhile (`bot rotate-secret`) wins: nothing is written and the old hash is
    returned. A failure to write is logged without the hash: the next alert tries again.
    """
    if old_hash is None:
        return old_hash
    try:
        swapped = replace_webhook_secret_hash(db, bot_id, old_hash, new_hash)
    except Exception as exc:
        log.warning("webhook secret hash not upgraded: %s", type(exc).__name__,
                    extra={"bot_id": bot_id})
        return old_hash
    if not swapped:
        return old_hash
    WEBHOOK_HASHES_UPGRADED.inc()
    log.info("webhook secret hash upgraded to the current server key", extra={"bot_id": bot_id})
    if cache is not None:
        cache.remember(bot_id, new_hash)
    return new_hash
