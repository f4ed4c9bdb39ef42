"""Trade rows (bot_trades) and the Swift audit trail (swift_order_logs).

bot_trades.status takes only the `TradeStatus` values, bot_trades.swift_status only the four
`SwiftStatus` values; what Swift answered at each step is in swift_order_logs, one row per
event with the taxonomy's code in error_code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from psycopg2.extras import Json

from storage.bot_leases import HELD_AT_EPOCH, LEASED_BY, LeaseLost
from storage.database import Database
from venue.precision import BASE, PRICE


class TradeStatus(StrEnum):
    """bot_trades.status: what became of a trade."""

    PENDING = "pending"  # recorded before anything was sent; its outcome not yet recorded
    COMPLETED = "completed"  # it traded wholly
    PARTIAL = "partial"  # it traded partly
    FAILED = "failed"  # it did not trade (refused, rejected, not filled)
    UNKNOWN = "unknown"  # its fate is unknown: reconciled before anything is sent again


class SwiftStatus(StrEnum):
    """bot_trades.swift_status: its only four values."""

    SUBMITTED = "submitted"  # sent; its fate is not (or not yet) known
    FILLED = "filled"  # traded through Swift, wholly or partly (the trade's status says which)
    FAILED = "failed"  # Swift could not trade it and it did not go on-chain
    FALLBACK = "fallback"  # Swift could not trade it; it went on-chain (fallback_reason says why)


@dataclass(frozen=True)
class NewTrade:
    """A trade about to be attempted."""

    bot_id: str
    signal_id: str | None
    wallet_address: str
    market: str
    side: str
    base_amount: int
    reduce_only: bool
    execution_method: str
    position_before: int | None = None
    entry_quote_before: int | None = None
    reference_price: int | None = None  # the snapshot's oracle price (1e6)


def open_trade(db: Database, trade: NewTrade, holder: str | None = None) -> str:
    """Record a trade before anything is sent (status pending); returns its id.

    With `holder`, only while that daemon holds the bot's lease (the fence that keeps a daemon
    whose lease ran out, during an outage say, from sending after another took the bot over);
    LeaseLost otherwise."""
    row = db.fetchone(f"{new_trades_sql(holder)} SELECT id FROM t",
                      new_trades_params([trade], holder))
    if row is None:
        raise LeaseLost(f"this daemon no longer holds bot {trade.bot_id}")
    return row["id"]


# a new trade's values, as the arrays (name, element type) `new_trades_sql` unnests
_NEW_TRADE = (("bot", "text"), ("signal", "text"), ("wallet", "text"), ("market", "text"),
              ("side", "text"), ("size", "numeric"), ("reduce_only", "boolean"),
              ("method", "text"), ("position", "numeric"), ("entry", "numeric"),
              ("reference", "numeric"))


def new_trades_sql(holder: str | None, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The head of a statement that writes pending trades: `r`, a row per trade (with the
    `extra` arrays beside), and `t` (INSERT ... RETURNING id, trading_bot_id), fenced by the
    lease with `holder` (a bot whose lease is not ours gets no row in `t`)."""
    columns = _NEW_TRADE + extra
    arrays = ", ".join(f"%({name})s::{kind}[]" for name, kind in columns)
    fence = "" if holder is None else f" WHERE {LEASED_BY.format(bot='r.bot')}"
    return (
        f"WITH r AS (SELECT * FROM unnest({arrays})"
        f"  AS r({', '.join(name for name, _ in columns)})),"
        " t AS (INSERT INTO bot_trades (trading_bot_id, signal_id, wallet_address, market, side,"
        " size, reduce_only, status, execution_method, position_before_base, entry_quote_before,"
        " reference_price) SELECT r.bot, r.signal, r.wallet, r.market, r.side, r.size,"
        " r.reduce_only, 'pending', r.method, r.position, r.entry, r.reference"
        f" FROM r{fence} RETURNING id, trading_bot_id)")


def new_trades_params(trades: list[NewTrade], holder: str | None) -> dict[str, Any]:
    """The parameters of `new_trades_sql` (without its `extra` arrays)."""
    return {"bot": [t.bot_id for t in trades], "signal": [t.signal_id for t in trades],
            "wallet": [t.wallet_address for t in trades], "market": [t.market for t in trades],
            "side": [t.side for t in trades],
            "size": [Decimal(t.base_amount) / BASE for t in trades],
            "reduce_only": [t.reduce_only for t in trades],
            "method": [t.execution_method for t in trades],
            "position": [t.position_before for t in trades],
            "entry": [t.entry_quote_before for t in trades],
            "reference": [None if t.reference_price is None
                          else Decimal(t.reference_price) / PRICE for t in trades],
            "holder": holder}


def update_trade(db: Database, trade_id: str, **fields: Any) -> None:
    """Set columns of a trade row (names are fixed by the callers, values are parameters)."""
    allowed = {"status", "filled_size", "price", "tx_signature", "error_message",
               "execution_method", "swift_order_id", "swift_status", "swift_submitted_at",
               "swift_filled_at", "auction_duration_ms", "keeper_pubkey", "price_improvement",
               "fallback_reason"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not a trade column: {sorted(unknown)}")
    if "status" in fields:  # TradeStatus's values only (ValueError otherwise)
        fields["status"] = TradeStatus(fields["status"]).value
    if "swift_status" in fields:  # SwiftStatus's values only (ValueError otherwise)
        fields["swift_status"] = SwiftStatus(fields["swift_status"]).value
    assignments = ", ".join(f"{name} = %({name})s" for name in fields)
    db.execute(f"UPDATE bot_trades SET {assignments}, updated_at = now() WHERE id = %(id)s",
               {**fields, "id": trade_id})


@dataclass(frozen=True)
class SwiftEvent:
    """One event of a Swift order's life, a row of swift_order_logs."""

    trade_id: str | None
    swift_order_id: str
    event_type: str
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    latency_ms: int | None = None


@dataclass(frozen=True)
class SwiftMark:
    """A Swift order about to be POSTed: its trade, uuid and signed request (what
    reconciliation needs: hash-status key, max_slot)."""

    trade_id: str | None
    swift_order_id: str
    request: dict[str, Any]


def log_swift_events(db: Database, events: Sequence[SwiftEvent]) -> None:
    """Append events of Swift orders to swift_order_logs in one statement (raises when it
    cannot: the caller counts them). A NUL in an error message (venue text) becomes U+FFFD:
    PostgreSQL text cannot hold one, and one answer must not cost the rows written with it."""
    if not events:
        return
    db.execute(
        "INSERT INTO swift_order_logs (trade_id, swift_order_id, event_type, request_payload,"
        " response_payload, error_code, error_message, latency_ms) VALUES "
        + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(events)),
        [value for e in events for value in (
            e.trade_id, e.swift_order_id, e.event_type, Json(e.request) if e.request else None,
            Json(e.response) if e.response else None, e.error_code,
            None if e.error_message is None else e.error_message.replace("\x00", "\ufffd"),
            e.latency_ms)])


def log_swift_event(db: Database, trade_id: str | None, swift_order_id: str, event_type: str,
                    *, request: dict[str, Any] | None = None,
                    response: dict[str, Any] | None = None, error_code: str | None = None,
                    error_message: str | None = None, latency_ms: int | None = None) -> None:
    """Append one event of a Swift order's life to swift_order_logs (raises when it cannot:
    the caller counts it)."""
    log_swift_events(db, [SwiftEvent(trade_id, swift_order_id, event_type, request, response,
                                     error_code, error_message, latency_ms)])


def mark_swift_submitted(db: Database, trade_id: str | None, swift_order_id: str,
                         request: dict[str, Any], *, holder: str | None = None,
                         epoch: int | None = None) -> None:
    """Right before a POST: the trade is `submitted` and its signed order is in the audit log
    (with the hash-status key and max_slot reconciliation needs), in one statement.

    With `holder`, only while the trade is pending and that daemon holds the bot's lease at
    `epoch` (the fence of every send: a daemon that lost the bot sends nothing); LeaseLost
    otherwise, and nothing is marked."""
    (refused,) = mark_swift_submitted_many(db, [SwiftMark(trade_id, swift_order_id, request)],
                                           holder=holder, epoch=epoch)
    if refused is not None:
        raise refused


def mark_swift_submitted_many(db: Database, marks: Sequence[SwiftMark], *,
                              holder: str | None = None,
                              epoch: int | None = None) -> list[LeaseLost | None]:
    """`mark_swift_submitted` for several orders of bots held at the same `epoch`, in one
    statement: each mark is fenced on its own (its trade pending, its bot held here at
    `epoch`); per mark, None when it was marked (its order may leave) or the LeaseLost that
    keeps it from leaving."""
    if not marks:
        return []
    params: dict[str, Any] = {"holder": holder, "epoch": epoch}
    rows = []
    for i, mark in enumerate(marks):
        params |= {f"t{i}": mark.trade_id, f"u{i}": mark.swift_order_id,
                   f"r{i}": Json(mark.request)}
        rows.append(f"(%(t{i})s, %(u{i})s, %(r{i})s::jsonb)")
    marked = db.fetchall(
        f"WITH v (trade, uuid, request) AS (VALUES {', '.join(rows)}),"
        " marked AS (UPDATE bot_trades t SET swift_status = 'submitted',"
        " swift_order_id = v.uuid, swift_submitted_at = now() AT TIME ZONE 'UTC',"
        f" updated_at = now() FROM v WHERE t.id = v.trade AND {_send_fence(holder)}"
        " RETURNING t.id, v.uuid, v.request)"
        " INSERT INTO swift_order_logs (trade_id, swift_order_id, event_type, request_payload)"
        " SELECT id, uuid, 'submitted', request FROM marked RETURNING trade_id", params)
    done = {row["trade_id"] for row in marked}
    return [None if mark.trade_id in done else _not_marked(mark.trade_id, epoch)
            for mark in marks]


def mark_legacy_sending(db: Database, trade_id: str, signature: str,
                        last_valid_block_height: int, *, holder: str,
                        epoch: int | None) -> None:
    """Right before an on-chain order is sent: its signature and the last block height it can
    land at are on its trade (a reconciler asks the chain about it, and waits while it may
    land), only while the trade is pending and this daemon holds the bot's lease at `epoch`;
    LeaseLost otherwise, and nothing is marked."""
    marked = db.execute(
        "UPDATE bot_trades t SET tx_signature = %(signature)s,"
        " tx_last_valid_block_height = %(last_valid)s, updated_at = now()"
        f" WHERE t.id = %(trade)s AND {_send_fence(holder)}",
        {"trade": trade_id, "signature": signature, "last_valid": last_valid_block_height,
         "holder": holder, "epoch": epoch})
    if marked != 1:
        raise _not_marked(trade_id, epoch)


def _not_marked(trade_id: str | None, epoch: int | None) -> LeaseLost:
    """Why a send's mark found nothing to mark (its order must not leave)."""
    return LeaseLost(f"trade {trade_id} not sent: not pending, or its bot is not held here"
                     f" at lease epoch {epoch}")


def _send_fence(holder: str | None) -> str:
    """The condition a send's mark adds on trade `t` (none without a holder)."""
    if holder is None:
        return "TRUE"
    held = HELD_AT_EPOCH.format(bot="t.trading_bot_id", epoch="%(epoch)s")
    return f"t.status = 'pending' AND {held}"


@dataclass(frozen=True)
class TradeRow:
    """A trade as a restart or a retry reads it back to decide what is left to do."""

    id: str
    status: str  # a TradeStatus value
    side: str
    size: Decimal
    reduce_only: bool
    execution_method: str
    filled_size: Decimal | None
    price: Decimal | None  # average fill price
    position_before_base: int | None  # base units (1e9) before it was sent
    entry_quote_before: int | None  # the position's quote_entry_amount then (1e6)


_TRADE_ROW_COLUMNS = ("id, status, side, size, reduce_only, execution_method, filled_size,"
                      " price, position_before_base, entry_quote_before")


def _trade_row(row: dict[str, Any]) -> TradeRow:
    """The row, with the venue's integer amounts (NUMERIC(40, 0)) as ints."""
    base, entry = row.pop("position_before_base"), row.pop("entry_quote_before")
    return TradeRow(**row, position_before_base=None if base is None else int(base),
                    entry_quote_before=None if entry is None else int(entry))


def signal_trades(db: Database, signal_id: str) -> list[TradeRow]:
    """Every trade of a signal, oldest first."""
    return [_trade_row(row) for row in db.fetchall(
        f"SELECT {_TRADE_ROW_COLUMNS} FROM bot_trades WHERE signal_id = %s ORDER BY created_at",
        (signal_id,))]


def fallback_reason(db: Database, trade_id: str) -> str | None:
    """Why a trade went out on-chain instead of through Swift (None: it did not, or no reason)."""
    row = db.fetchone("SELECT fallback_reason FROM bot_trades WHERE id = %s"
                      " AND execution_method <> 'swift'", (trade_id,))
    return row["fallback_reason"] if row else None


def filled_closes_without_share(db: Database, signal_id: str) -> list[TradeRow]:
    """A signal's filled reduce-only trades that have no profit-share row yet."""
    return [_trade_row(row) for row in db.fetchall(
        f"SELECT {_TRADE_ROW_COLUMNS} FROM bot_trades t WHERE t.signal_id = %s AND t.reduce_only"
        " AND t.status IN ('completed', 'partial') AND t.filled_size > 0"
        " AND NOT EXISTS (SELECT 1 FROM pending_profit_shares p WHERE p.trade_id = t.id)",
        (signal_id,))]


@dataclass(frozen=True)
class SwiftSubmission:
    """Where a sent Swift order can be looked up, and until when it may trade."""

    hash_key: str  # the hash-status key
    max_slot: int  # its last valid slot


def last_swift_submission(db: Database, bot_id: str, signal_id: str | None,
                          trade_id: str | None) -> SwiftSubmission | None:
    """The hash-status key and max_slot of the latest Swift order for this signal (or trade)."""
    row = db.fetchone(
        "SELECT l.request_payload->>'hash_key' AS hash_key,"
        " (l.request_payload->>'max_slot')::bigint AS max_slot FROM swift_order_logs l"
        " JOIN bot_trades t ON t.id = l.trade_id WHERE l.event_type = 'submitted'"
        " AND t.trading_bot_id = %s AND (t.signal_id = %s OR t.id = %s)"
        " ORDER BY l.created_at DESC LIMIT 1", (bot_id, signal_id, trade_id))
    return SwiftSubmission(row["hash_key"], int(row["max_slot"])) if row else None


def swift_submissions(db: Database, trade_id: str) -> int:
    """How many Swift orders a trade sent (each retry is its own `submitted` event)."""
    row = db.fetchone("SELECT count(*) AS n FROM swift_order_logs WHERE trade_id = %s"
                      " AND event_type = 'submitted'", (trade_id,))
    return int(row["n"]) if row else 0


@dataclass(frozen=True)
class LegacySend:
    """An on-chain order whose outcome was never recorded: what to ask the chain about it."""

    tx_signature: str
    last_valid_block_height: int


def last_legacy_send(db: Database, bot_id: str, signal_id: str | None,
                     trade_id: str | None) -> LegacySend | None:
    """The signature and last valid block height of the latest on-chain order of this signal
    (or trade) whose outcome was never recorded."""
    row = db.fetchone(
        "SELECT tx_signature, tx_last_valid_block_height FROM bot_trades"
        " WHERE trading_bot_id = %s AND (signal_id = %s OR id = %s)"
        " AND status IN ('pending', 'unknown') AND tx_last_valid_block_height IS NOT NULL"
        " ORDER BY created_at DESC LIMIT 1", (bot_id, signal_id, trade_id))
    return LegacySend(row["tx_signature"], int(row["tx_last_valid_block_height"])) if row else None
