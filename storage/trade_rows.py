"""One trade's row as the profit-share path reads it: whose it is, whether it closes, its fill.

Both the actor that records a creator's share and the guard that pays it read these fields of
the closing trade; they come from one query here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from storage.database import Database

FILLED_STATUSES = ("completed", "partial")


@dataclass(frozen=True)
class TradeRow:
    """The fields of a bot_trades row that decide whether it is a filled close, and its fill."""

    bot_id: str
    reduce_only: bool
    status: str
    filled_size: Decimal | None  # in the base asset (not 1e9 units)
    price: Decimal | None  # average fill price in quote (not 1e6 units)

    @property
    def filled(self) -> bool:
        """The trade traded, wholly or partly."""
        return self.status in FILLED_STATUSES


def trade_row(db: Database, trade_id: str) -> TradeRow | None:
    """The trade's row, or None if there is no such trade."""
    row = db.fetchone("SELECT trading_bot_id, reduce_only, status, filled_size, price"
                      " FROM bot_trades WHERE id = %s", (trade_id,))
    if row is None:
        return None
    return TradeRow(bot_id=row["trading_bot_id"], reduce_only=row["reduce_only"],
                    status=row["status"], filled_size=row["filled_size"], price=row["price"])
