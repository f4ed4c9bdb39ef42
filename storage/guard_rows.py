"""What the pre-trade guard reads before an order leaves, in one statement (one snapshot).

The stop flags (global and the bot's wallet), the bot's binding MAC and, for a subscriber,
its publication's terms with their MAC: one round trip per order instead of one per row, and
for an order's first guard the same statement that writes its trade row, one statement for
many orders of different bots (`open_trades_guarded`), so a fan-out of hundreds of copies does
not queue on the database right before its POSTs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg2

from security.emergency_stop import StopState
from storage.bot_leases import LeaseLost
from storage.copy_trading import PUBLISHED_COLUMNS
from storage.database import Database
from storage.emergency_stops import STOP_COLUMNS, STOP_JOIN, stop_params, stops_of
from storage.trades import NewTrade, new_trades_params, new_trades_sql

_PUBLICATION = [name.strip() for name in PUBLISHED_COLUMNS.split(",")] + ["terms_mac"]
_COLUMNS = (f"{STOP_COLUMNS}, b.id IS NOT NULL AS bot_exists, b.binding_mac, "
            + ", ".join(f"p.{name} AS pub_{name}" for name in _PUBLICATION))
_JOINS = (f"{STOP_JOIN} LEFT JOIN trading_bots b ON b.id = {{bot}}"
          " LEFT JOIN published_bots p ON p.id = {published}")  # each an expression
_GUARD_ARRAYS = (("guard_bot", "text"), ("guard_wallet", "text"), ("published", "text"))


@dataclass(frozen=True)
class GuardQuery:
    """Whose rows one order's guard reads: the bot, its wallet, and the publication it copies
    (None: its terms are not checked for this order)."""

    bot_id: str
    wallet_address: str
    published_id: str | None


@dataclass(frozen=True)
class GuardRows:
    """The rows one order's guard checks, as stored right before it leaves."""

    global_stop: StopState
    wallet_stop: StopState  # a missing wallet reads as stopped
    bot_exists: bool
    binding_mac: str | None
    published_id: str | None  # the publication asked for (None: its terms are not checked)
    publication: dict[str, Any] | None  # PUBLISHED_COLUMNS and terms_mac; None: none such


def read_guard_rows(db: Database, query: GuardQuery) -> GuardRows:
    """One read of everything `custody.trade_guard.guard_trade` checks."""
    joins = _JOINS.format(wallet="%(stop_wallet)s", bot="%(guard_bot)s",
                          published="%(published)s")
    row = db.fetchone(f"SELECT {_COLUMNS} FROM (SELECT 1) AS one {joins}",
                      {**stop_params(query.wallet_address), "guard_bot": query.bot_id,
                       "published": query.published_id})
    assert row is not None  # the statement always returns its one row
    return _rows(row, query)


def open_trades_guarded(db: Database, orders: list[tuple[NewTrade, GuardQuery]],
                        holder: str | None) -> list[tuple[str, GuardRows] | Exception]:
    """`storage.trades.open_trade` and `read_guard_rows` as one statement, for orders of
    different bots: each trade row is written and the rows its guard checks are read in one
    round trip, right before the order leaves; answered in order, an order that gets no row
    with the reason (LeaseLost when the lease fences it out). A statement the database refuses
    for a row's data is run again order by order, so that order fails alone (its answer is the
    refusal). One order per bot (its answer is matched by bot): ValueError otherwise."""
    bots = [trade.bot_id for trade, _ in orders]
    if len(set(bots)) != len(bots):
        raise ValueError("one order per bot and statement")
    try:
        rows = _open(db, orders, holder)
    except (psycopg2.DataError, psycopg2.IntegrityError) as refused:
        if len(orders) == 1:
            return [refused]
        return [answer for order in orders for answer in open_trades_guarded(db, [order], holder)]
    by_bot = {row["asked_bot"]: row for row in rows}
    return [(by_bot[trade.bot_id]["trade_id"], _rows(by_bot[trade.bot_id], query))
            if by_bot[trade.bot_id]["trade_id"] is not None
            else LeaseLost(f"this daemon no longer holds bot {trade.bot_id}")
            for trade, query in orders]


def _open(db: Database, orders: list[tuple[NewTrade, GuardQuery]],
          holder: str | None) -> list[dict[str, Any]]:
    joins = _JOINS.format(wallet="r.guard_wallet", bot="r.guard_bot", published="r.published")
    return db.fetchall(
        f"{new_trades_sql(holder, _GUARD_ARRAYS)} SELECT r.bot AS asked_bot,"
        f" t.id AS trade_id, {_COLUMNS} FROM r LEFT JOIN t ON t.trading_bot_id = r.bot {joins}",
        {**new_trades_params([trade for trade, _ in orders], holder), **stop_params(),
         "guard_bot": [query.bot_id for _, query in orders],
         "guard_wallet": [query.wallet_address for _, query in orders],
         "published": [query.published_id for _, query in orders]})


def _rows(row: dict[str, Any], query: GuardQuery) -> GuardRows:
    global_stop, wallet_stop = stops_of(row)
    publication = None
    if row["pub_id"] is not None:
        publication = {name: row[f"pub_{name}"] for name in _PUBLICATION}
    return GuardRows(global_stop, wallet_stop, bool(row["bot_exists"]), row["binding_mac"],
                     query.published_id, publication)
