"""Which Drift sub-account each bot of a wallet trades on (trading_bots.drift_subaccount_id).

Ids are allocated per wallet in the program's order (the next one after the wallet's highest),
under a row lock on the wallet so that two `bot create`s on one wallet never pick the same id;
a partial unique index (migration 0011) makes sharing impossible for every bot not marked
``drift_subaccount_shared`` (the bots created before per-bot sub-accounts that still wait for
`bot migrate-subaccounts`). Ids are never reused: a bot that stops trading keeps its id, because
the program can never create an id twice (its counter only grows).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from storage.database import Database


@dataclass(frozen=True)
class SharedBot:
    """A bot that still shares a sub-account with an older bot of its wallet."""

    bot_id: str
    wallet_address: str
    market: str
    market_index: int
    drift_subaccount_id: int
    leverage: Decimal
    max_position_size: Decimal
    capital_usd: Decimal | None  # a subscriber bot's subscribed capital
    keeper_bot_id: str  # the oldest bot on that sub-account, which keeps it


@dataclass(frozen=True)
class OpenWork:
    """What a bot still has in flight, each of which would act on its current sub-account."""

    signals: int  # accepted or processing
    retries: int  # pending or running retry jobs
    ious: int  # unpaid profit shares it owes

    @property
    def in_flight(self) -> bool:
        """Something is still in flight."""
        return bool(self.signals or self.retries or self.ious)


def lock_wallet(db: Database, wallet_address: str) -> bool:
    """Lock the wallet row until the current transaction ends; False if there is no wallet."""
    return db.fetchone("SELECT address FROM wallets WHERE address = %s FOR UPDATE",
                       (wallet_address,)) is not None


def next_subaccount_id(db: Database, wallet_address: str) -> int:
    """The id a new bot of this wallet gets: 0 for its first bot, else one past the highest."""
    row = db.fetchone("SELECT COALESCE(MAX(drift_subaccount_id) + 1, 0) AS n FROM trading_bots"
                      " WHERE wallet_address = %s", (wallet_address,))
    return int(row["n"]) if row else 0


def holders(db: Database, wallet_address: str, sub_account_id: int) -> list[str]:
    """Ids of the bots on one sub-account of a wallet, oldest first."""
    rows = db.fetchall("SELECT id FROM trading_bots WHERE wallet_address = %s"
                       " AND drift_subaccount_id = %s ORDER BY created_at, id",
                       (wallet_address, sub_account_id))
    return [r["id"] for r in rows]


def is_shared(db: Database, bot_id: str) -> bool:
    """True while the bot waits for `bot migrate-subaccounts`."""
    row = db.fetchone("SELECT drift_subaccount_shared FROM trading_bots WHERE id = %s",
                      (bot_id,))
    return bool(row and row["drift_subaccount_shared"])


def shared_bots(db: Database, wallet_address: str | None = None) -> list[SharedBot]:
    """Bots still sharing a sub-account, by wallet and age (the order they are moved in)."""
    rows = db.fetchall(
        "SELECT b.id AS bot_id, b.wallet_address, b.market, b.market_index,"
        " b.drift_subaccount_id, b.leverage, b.max_position_size, s.capital_usd,"
        " (SELECT k.id FROM trading_bots k WHERE k.wallet_address = b.wallet_address"
        "   AND k.drift_subaccount_id = b.drift_subaccount_id AND NOT k.drift_subaccount_shared"
        "   ORDER BY k.created_at, k.id LIMIT 1) AS keeper_bot_id"
        " FROM trading_bots b LEFT JOIN subscriptions s ON s.subscriber_bot_id = b.id"
        " WHERE b.drift_subaccount_shared AND (%s::text IS NULL OR b.wallet_address = %s)"
        " ORDER BY b.wallet_address, b.created_at, b.id",
        (wallet_address, wallet_address))
    return [SharedBot(**{**r, "keeper_bot_id": r["keeper_bot_id"] or ""}) for r in rows]


def move_bot(db: Database, bot_id: str, from_id: int, to_id: int, funded_quote: Decimal,
             signatures: list[str]) -> bool:
    """Give a shared bot its own sub-account and record the move; False if the row changed."""
    with db.connection():
        moved = db.execute(
            "UPDATE trading_bots SET drift_subaccount_id = %s, drift_subaccount_shared = false,"
            " updated_at = now() WHERE id = %s AND drift_subaccount_id = %s"
            " AND drift_subaccount_shared", (to_id, bot_id, from_id)) == 1
        if moved:
            db.execute(
                "INSERT INTO subaccount_moves (bot_id, wallet_address, from_subaccount_id,"
                " to_subaccount_id, funded_quote, tx_signatures)"
                " SELECT id, wallet_address, %s, %s, %s, %s FROM trading_bots WHERE id = %s",
                (from_id, to_id, funded_quote, signatures, bot_id))
        return moved


def open_work(db: Database, bot_id: str) -> OpenWork:
    """The bot's running signals, retry jobs and unpaid profit shares (a move waits for none)."""
    row = db.fetchone(
        "SELECT (SELECT count(*) FROM webhook_signals WHERE trading_bot_id = %(bot)s"
        "         AND status IN ('accepted', 'processing')) AS signals,"
        " (SELECT count(*) FROM trade_retry_queue WHERE bot_id = %(bot)s"
        "   AND status IN ('pending', 'running')) AS retries,"
        " (SELECT count(*) FROM pending_profit_shares WHERE subscriber_bot_id = %(bot)s"
        "   AND status IN ('pending', 'sending')) AS ious", {"bot": bot_id})
    assert row is not None
    return OpenWork(signals=int(row["signals"]), retries=int(row["retries"]),
                    ious=int(row["ious"]))


def moves(db: Database, bot_id: str) -> list[dict[str, Any]]:
    """The recorded moves of one bot, oldest first."""
    return db.fetchall("SELECT from_subaccount_id, to_subaccount_id, funded_quote,"
                       " tx_signatures, moved_at FROM subaccount_moves WHERE bot_id = %s"
                       " ORDER BY moved_at, id", (bot_id,))


def shared_count(db: Database) -> int:
    """How many bots still share a sub-account (the daemon warns at start while any do)."""
    row = db.fetchone("SELECT count(*) AS n FROM trading_bots WHERE drift_subaccount_shared")
    return int(row["n"]) if row else 0
