"""Copy trading rows: published bots (with the creator's profit share) and subscriptions.

A publication's terms (creator wallet, profit-share percent) are MAC'd (`terms_mac`,
security.row_macs) when written with a key ring, and verified before a subscriber order or a
payment (`verified_publication`). A subscriber bot is copied to only while the published bot
its own (MAC'd) row names is the one its subscription names.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from security import row_macs
from security.server_key import ServerKeyRing
from storage.bots import BOT_COLUMNS, Bot, bot_from_row
from storage.database import Database
from storage.row_mac_rows import seal_bot

log = logging.getLogger(__name__)

PUBLISHED_COLUMNS = (
    "id, trading_bot_id, creator_wallet_address, profit_share_percent, is_active, created_at"
)
_SUBSCRIPTION = (
    "id, published_bot_id, subscriber_bot_id, subscriber_wallet_address, capital_usd, is_active,"
    " created_at, max_price_deviation_bps"
)


@dataclass(frozen=True)
class PublishedBot:
    """A bot offered for copy trading."""

    id: str
    trading_bot_id: str
    creator_wallet_address: str
    profit_share_percent: Decimal
    is_active: bool
    created_at: datetime


@dataclass(frozen=True)
class Subscription:
    """A subscriber wallet following a published bot through its own trading bot."""

    id: str
    published_bot_id: str
    subscriber_bot_id: str
    subscriber_wallet_address: str
    capital_usd: Decimal
    is_active: bool
    created_at: datetime
    max_price_deviation_bps: int | None = None  # opening copies beyond it are skipped


def _published(row: dict[str, Any]) -> PublishedBot:
    """Row dict to PublishedBot."""
    return PublishedBot(**row)


def _subscription(row: dict[str, Any]) -> Subscription:
    """Row dict to Subscription."""
    return Subscription(**row)


def publish_bot(
    db: Database, *, trading_bot_id: str, creator_wallet_address: str,
    profit_share_percent: Decimal, ring: ServerKeyRing | None = None,
) -> PublishedBot:
    """Publish a bot; raises on a bot that is already published (unique trading_bot_id).
    Pass `ring` so the terms are MAC'd as written."""
    published_id = str(uuid.uuid4())
    mac = None if ring is None else row_macs.sign(ring, row_macs.TERMS, row_macs.terms_fields({
        "id": published_id, "trading_bot_id": trading_bot_id,
        "creator_wallet_address": creator_wallet_address,
        "profit_share_percent": profit_share_percent}))
    row = db.fetchone(
        "INSERT INTO published_bots (id, terms_mac, trading_bot_id, creator_wallet_address,"
        f" profit_share_percent) VALUES (%s, %s, %s, %s, %s) RETURNING {PUBLISHED_COLUMNS}",
        (published_id, mac, trading_bot_id, creator_wallet_address, profit_share_percent),
    )
    assert row is not None
    return _published(row)


def published_for_bot(db: Database, trading_bot_id: str) -> PublishedBot | None:
    """The publication of a trading bot, or None if it is not published."""
    row = db.fetchone(
        f"SELECT {PUBLISHED_COLUMNS} FROM published_bots WHERE trading_bot_id = %s",
        (trading_bot_id,)
    )
    return _published(row) if row else None


def find_published(db: Database, bot_or_published_id: str) -> PublishedBot | None:
    """A publication named by its own id or by its trading bot's id."""
    row = db.fetchone(
        f"SELECT {PUBLISHED_COLUMNS} FROM published_bots"
        " WHERE id = %s OR trading_bot_id = %s LIMIT 1",
        (bot_or_published_id, bot_or_published_id),
    )
    return _published(row) if row else None


def insert_subscription(
    db: Database, *, published_bot_id: str, subscriber_bot_id: str,
    subscriber_wallet_address: str, capital_usd: Decimal,
    max_price_deviation_bps: int | None = None, ring: ServerKeyRing | None = None,
) -> Subscription:
    """Record that a subscriber bot follows a published bot; with `ring`, the subscriber bot's
    binding (which names the published bot) is MAC'd in the same transaction."""
    row = db.fetchone(
        "INSERT INTO subscriptions (published_bot_id, subscriber_bot_id,"
        " subscriber_wallet_address, capital_usd, max_price_deviation_bps)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_SUBSCRIPTION}",
        (published_bot_id, subscriber_bot_id, subscriber_wallet_address, capital_usd,
         max_price_deviation_bps),
    )
    assert row is not None
    if ring is not None:
        seal_bot(db, ring, subscriber_bot_id)
    return _subscription(row)


def active_subscription(
    db: Database, published_bot_id: str, subscriber_wallet_address: str
) -> Subscription | None:
    """The wallet's active subscription to this published bot, if any."""
    row = db.fetchone(
        f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE published_bot_id = %s"
        " AND subscriber_wallet_address = %s AND is_active LIMIT 1",
        (published_bot_id, subscriber_wallet_address),
    )
    return _subscription(row) if row else None


def subscriber_bots(db: Database, published_bot_id: str) -> list[Bot]:
    """The active subscriber bots of a published bot: where its signals are copied to."""
    columns = ", ".join(f"b.{c.strip()}" for c in BOT_COLUMNS.split(","))
    rows = db.fetchall(
        f"SELECT {columns} FROM subscriptions s JOIN trading_bots b ON b.id = s.subscriber_bot_id"
        " WHERE s.published_bot_id = %s AND s.is_active AND b.is_active"
        " AND b.source_published_bot_id = s.published_bot_id ORDER BY s.created_at",
        (published_bot_id,),
    )
    return [bot_from_row(r) for r in rows]


def subscriber_counts(db: Database) -> dict[str, int]:
    """Active subscriptions per published bot id."""
    rows = db.fetchall(
        "SELECT published_bot_id, count(*) AS n FROM subscriptions WHERE is_active"
        " GROUP BY published_bot_id"
    )
    return {r["published_bot_id"]: int(r["n"]) for r in rows}


def all_published(db: Database) -> dict[str, PublishedBot]:
    """Every publication, keyed by its trading bot id (for listings)."""
    rows = db.fetchall(f"SELECT {PUBLISHED_COLUMNS} FROM published_bots")
    return {r["trading_bot_id"]: _published(r) for r in rows}


def verified_publication(db: Database, ring: ServerKeyRing,
                         published_id: str) -> tuple[PublishedBot | None, str | None]:
    """The publication if its terms MAC verifies: (publication, None) or (None, reason).

    A MAC under an older key is moved to the current one; terms without one are refused
    (`bot publish` writes it; older rows got theirs from the one-time backfill)."""
    row = db.fetchone(f"SELECT {PUBLISHED_COLUMNS}, terms_mac FROM published_bots WHERE id = %s",
                      (published_id,))
    return publication_verdict(db, ring, row)


def publication_verdict(db: Database, ring: ServerKeyRing, row: dict[str, Any] | None
                        ) -> tuple[PublishedBot | None, str | None]:
    """`verified_publication` for a row the caller has read (PUBLISHED_COLUMNS and terms_mac;
    None: no such publication)."""
    if row is None:
        return None, "publication_missing"
    row = dict(row)
    stored = row.pop("terms_mac")
    published = _published(row)
    fields = row_macs.terms_fields(published)
    if stored is None:
        return None, "publication_terms_mac_missing"
    verdict = row_macs.check(ring, row_macs.TERMS, fields, stored)
    if not verdict.ok:
        return None, verdict.reason
    if verdict.needs_resign:
        _swap_terms_mac(db, published, stored, row_macs.sign(ring, row_macs.TERMS, fields))
    return published, None


def _swap_terms_mac(db: Database, published: PublishedBot, old: str | None, new: str) -> bool:
    """Compare-and-swap the terms MAC, only while the covered fields are unchanged."""
    return db.execute(
        "UPDATE published_bots SET terms_mac = %s WHERE id = %s"
        " AND terms_mac IS NOT DISTINCT FROM %s AND creator_wallet_address = %s"
        " AND profit_share_percent = %s AND trading_bot_id = %s",
        (new, published.id, old, published.creator_wallet_address,
         published.profit_share_percent, published.trading_bot_id)) == 1
