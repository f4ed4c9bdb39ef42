"""What the pre-trade guard reads before an order leaves, in one statement (one snapshot).

The stop flags (global and the bot's wallet), the bot's binding MAC and, for a subscriber,
its publication's terms with their MAC: one round trip per order instead of one per row, and
for an order's first guard the same round trip that writes its trade row, so a fan-out of
hundreds of copies does not queue on the database right before its POSTs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from security.emergency_stop import StopState
from storage.bot_leases import LeaseLost
from storage.copy_trading import PUBLISHED_COLUMNS
from storage.database import Database
from storage.emergency_stops import STOP_COLUMNS, STOP_JOIN, stop_params, stops_of
from storage.trades import NewTrade, insert_trade_params, insert_trade_sql

_PUBLICATION = [name.strip() for name in PUBLISHED_COLUMNS.split(",")] + ["terms_mac"]
_COLUMNS = (f"{STOP_COLUMNS}, b.id IS NOT NULL AS bot_exists, b.binding_mac, "
            + ", ".join(f"p.{name} AS pub_{name}" for name in _PUBLICATION))
_JOINS = (f"{STOP_JOIN} LEFT JOIN trading_bots b ON b.id = %(guard_bot)s"
          " LEFT JOIN published_bots p ON p.id = %(published)s")


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
    row = db.fetchone(f"SELECT {_COLUMNS} FROM (SELECT 1) AS one {_JOINS}", _params(query))
    assert row is not None  # the statement always returns its one row
    return _rows(row, query)


def open_trade_guarded(db: Database, trade: NewTrade, holder: str | None,
                       query: GuardQuery) -> tuple[str, GuardRows]:
    """`storage.trades.open_trade` and `read_guard_rows` as one statement: the trade row is
    written and the rows its guard checks are read in one round trip, right before the order
    leaves. LeaseLost when the lease fences the trade out (nothing is written)."""
    row = db.fetchone(
        f"WITH t AS ({insert_trade_sql(holder)}) SELECT t.id AS trade_id, {_COLUMNS}"
        f" FROM (SELECT 1) AS one LEFT JOIN t ON true {_JOINS}",
        {**insert_trade_params(trade, holder), **_params(query)})
    assert row is not None
    if row["trade_id"] is None:
        raise LeaseLost(f"this daemon no longer holds bot {trade.bot_id}")
    return row["trade_id"], _rows(row, query)


def _params(query: GuardQuery) -> dict[str, Any]:
    return {**stop_params(query.wallet_address), "guard_bot": query.bot_id,
            "published": query.published_id}


def _rows(row: dict[str, Any], query: GuardQuery) -> GuardRows:
    global_stop, wallet_stop = stops_of(row)
    publication = None
    if row["pub_id"] is not None:
        publication = {name: row[f"pub_{name}"] for name in _PUBLICATION}
    return GuardRows(global_stop, wallet_stop, bool(row["bot_exists"]), row["binding_mac"],
                     query.published_id, publication)
