"""What a restart finds half done: the signals a crash (or a lease takeover) left `processing`.

After a crash, a signal left `processing`:
- with an order that may have left (a pending trade): each such order becomes a retry job of
  unknown outcome (run by actors.retry_flow), and the signal ends; a flip cut with only its close
  out runs again (from a fresh read: its open) once that close's job is done, unless it went stale
  meanwhile;
- with no order sent, or only a completed close (a flip cut between its close and its open):
  nothing of it is on the wire, so it runs again from a fresh read (the position then says what
  is left to do), unless it is older than SIGNAL_STALE_S (then it fails with that reason; closes
  never go stale: a close that never happens is the worst outcome);
- with an opening order already filled: it is finished as it stands.
A source signal's copies are created (once) in every case.
"""

from __future__ import annotations

import logging
import time

from actors.bot_context import VENUE_READ_ERRORS, BotContext
from actors.copies import route_copies, snapshots
from actors.profit_share import notify_close
from storage.bots import Bot, get_bot
from storage.retry_queue import NewJob, enqueue
from storage.signals import (
    SignalRow,
    SignalStatus,
    finish_signal,
    interrupted_signals,
    requeue_signal,
)
from storage.trades import (
    TradeRow,
    TradeStatus,
    filled_closes_without_share,
    signal_trades,
    swift_submissions,
    update_trade,
)
from trading.alerts import never_stale
from trading.retry_policy import priority_for
from venue.positions import PerpPositionView
from venue.precision import BASE, PRICE

log = logging.getLogger(__name__)


def resume_interrupted(ctx: BotContext, stale_s: float) -> None:
    """Settle every signal of this bot a crash left `processing` (see the module docstring)."""
    bot = get_bot(ctx.services.db, ctx.bot_id)
    assert bot is not None
    for row in interrupted_signals(ctx.services.db, ctx.bot_id):
        _resume_one(ctx, bot, row, stale_s)


def _resume_one(ctx: BotContext, bot: Bot, row: SignalRow, stale_s: float) -> None:
    db = ctx.services.db
    context = {"signal_id": row.id, "bot_id": bot.id}
    parsed = row.parsed or {}
    age = time.time() - row.received_at.timestamp()
    stale = age > stale_s and not never_stale(parsed)
    if row.source == "webhook" and stale:
        log.warning("no copies made of a stale interrupted signal", extra=context)
    elif row.source == "webhook":
        try:
            route_copies(ctx, row, snapshots(ctx, bot, row)[1])
        except VENUE_READ_ERRORS as exc:  # copies are made when the signal runs again
            log.warning("copies not made yet (%s)", type(exc).__name__, extra=context)
    if bot.is_subscriber:  # closes that filled before the crash still owe their share
        for trade in filled_closes_without_share(db, row.id):
            base, entry = trade.position_before_base, trade.entry_quote_before
            if base is None or entry is None or trade.filled_size is None or trade.price is None:
                log.warning("a filled close has no recorded position before it: no profit share",
                            extra={**context, "trade_id": trade.id})
                continue
            notify_close(ctx.services, trade.id, PerpPositionView(
                bot.market_index, base_asset_amount=base, quote_entry_amount=entry),
                int(trade.filled_size * BASE), int(trade.price * PRICE))
    trades = signal_trades(db, row.id)
    pending = [t for t in trades if t.status == TradeStatus.PENDING]
    opened = [t for t in trades if not t.reduce_only and t.status in
              (TradeStatus.COMPLETED, TradeStatus.PARTIAL, TradeStatus.UNKNOWN)]
    if pending:
        _reconcile_pending(ctx, bot, row, pending)
        return
    unknown = any(t.status == TradeStatus.UNKNOWN for t in trades)
    if opened or unknown:
        finish_signal(db, row.id, SignalStatus.PARTIAL if unknown else SignalStatus.DONE,
                      {"interrupted": True}, "interrupted by a restart")
        return
    if stale:
        finish_signal(db, row.id, SignalStatus.FAILED, {"interrupted": True, "stale": True},
                      f"stale: interrupted by a restart {age:.0f} s after it arrived"
                      f" (SIGNAL_STALE_S={stale_s:.0f})")
        log.warning("interrupted signal too old to run again", extra=context)
        return
    requeue_signal(db, row.id)  # nothing of it is on the wire: it runs again, in order
    log.warning("interrupted signal runs again from a fresh read", extra=context)


def _reconcile_pending(ctx: BotContext, bot: Bot, row: SignalRow,
                       pending: list[TradeRow]) -> None:
    """Each order that may have left becomes a retry job of unknown outcome; the signal ends."""
    db = ctx.services.db
    for trade in pending:
        priority = priority_for(trade.reduce_only)
        enqueue(db, NewJob(
            bot_id=bot.id, wallet_address=bot.wallet_address, market=bot.market,
            side=trade.side, size=trade.size, reduce_only=trade.reduce_only,
            priority=priority.name, max_attempts=priority.max_attempts,
            signal_id=row.id, sub_account_id=bot.drift_subaccount_id,
            original_trade_id=trade.id,
            original_execution_method=trade.execution_method,
            last_error="interrupted by a restart", outcome_unknown=True,
            position_before=trade.position_before_base,
            swift_attempts=swift_submissions(db, trade.id)),
            delay_s=ctx.unknown_settle_s, ring=ctx.services.ring, holder=ctx.services.holder,
            epoch=ctx.lease_epoch)
        update_trade(db, trade.id, status=TradeStatus.UNKNOWN,
                     error_message="interrupted by a restart; reconciling")
    finish_signal(db, row.id, SignalStatus.FAILED,
                  {"interrupted": True, "reconciling": len(pending)}, "interrupted by a restart")
    log.warning("interrupted signal handed to reconciliation (%d order(s))", len(pending),
                extra={"signal_id": row.id, "bot_id": bot.id})
