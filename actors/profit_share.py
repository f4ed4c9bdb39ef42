"""ProfitShareActor: realised PnL on subscriber closes, creator payments, and the IOU job.

On `SubscriberClosed` (told by a subscriber's BotActor after a close or reduce filled) the
actor computes the realised PnL of the fill against the entry before the close
(trading.profit_share) and, when positive, records the creator's share in pending_profit_shares
(once per closing trade) and pays it at once (actors.profit_share_payment: one guarded
transaction, exactly once). A share that could not be paid stays an IOU; a periodic tick (every
5 minutes) claims the due ones. All slow work of a payment pass (queries, RPC, the send) runs
off the mailbox with run_in_background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors.legacy_executor import ExecutorClient
from actors.messages import PayDue, SubscriberClosed
from actors.profit_share_payment import ASK_TIMEOUT_S, ExecutorPayer, ShareSettler
from actors.services import Services
from observability.trading_metrics import PROFIT_SHARE_IOUS_PENDING
from storage.bots import get_bot
from storage.copy_trading import verified_publication
from storage.profit_shares import NewShare, count_unpaid, create_share
from storage.trade_refusals import record_refusal
from storage.trade_rows import trade_row
from supervision import Outcome, Refusal, SupervisedActor, request, whereis
from trading.profit_share import Close as CloseFill
from trading.profit_share import IouSchedule, realized_pnl, share_amount, to_quote_decimal
from venue.positions import PerpPositionView
from venue.precision import BASE, PRICE

log = logging.getLogger(__name__)

LEASE_S = 120.0
BATCH = 20


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tick:
    """The periodic tick: sweep the due shares, then schedule the next tick."""


@dataclass(frozen=True)
class _Swept:
    """A background payment pass ended (its outcome: a count or the error)."""

    outcome: Outcome


def notify_close(services: Services, trade_id: str, before: PerpPositionView,
                 base_filled: int, fill_price: int | None) -> None:
    """What a subscriber's BotActor calls after a close/reduce filled (never raises)."""
    if services.root is None or fill_price is None or base_filled == 0:
        return
    message = SubscriberClosed(trade_id, before.base_asset_amount, before.quote_entry_amount,
                               abs(base_filled), fill_price)
    try:
        request(whereis(services.root, "profit_share", ASK_TIMEOUT_S), message, ASK_TIMEOUT_S)
    except Exception as exc:
        log.error("profit share not recorded for trade %s: %s", trade_id, type(exc).__name__)


# --- the actor -------------------------------------------------------------------------------


class ProfitShareActor(SupervisedActor):
    """Records creators' shares of subscriber profits and pays each exactly once."""

    def __init__(self, services: Services, schedule: IouSchedule | None = None,
                 tick_s: float | None = None, lease_s: float = LEASE_S, batch: int = BATCH,
                 chain: ExecutorClient | None = None, payer: ExecutorPayer | None = None) -> None:
        super().__init__()
        self._services = services
        self._schedule = schedule or IouSchedule()
        self._tick_s = self._schedule.interval_s if tick_s is None else tick_s
        self._settler = ShareSettler(services, self._schedule, lease_s, batch,
                                     chain or ExecutorClient(services),
                                     payer or ExecutorPayer(services))
        self._sweeping = False
        self._again = False

    def on_start(self) -> None:
        """Resume IOUs (and crashed payments) at once."""
        self.actor_ref.tell(_Tick())  # resume IOUs (and crashed payments) at once

    def on_receive(self, message: Any) -> Any:
        """Record closes, sweep on demand and on each tick, note when a sweep ended."""
        if isinstance(message, SubscriberClosed):
            share_id = self._record(message)
            if share_id is not None:
                self._sweep()
            return share_id
        if isinstance(message, PayDue):
            self._sweep()
            return None
        if isinstance(message, _Tick):
            self._sweep()
            self.send_later(self._tick_s, _Tick())
            return None
        if isinstance(message, _Swept):
            return self._swept(message.outcome)
        return super().on_receive(message)

    # --- recording a share -------------------------------------------------------------------

    def _record(self, msg: SubscriberClosed) -> str | None:
        """Create the share of a closing trade (idempotent); None when nothing is owed."""
        db = self._services.db
        trade = trade_row(db, msg.trade_id)
        if trade is None or not trade.reduce_only:
            raise Refusal(f"trade {msg.trade_id} is not a close")
        if not trade.filled:
            return None
        bot = get_bot(db, trade.bot_id)
        if bot is None or bot.source_published_bot_id is None:
            return None
        published, refused = verified_publication(db, self._services.ring,
                                                  bot.source_published_bot_id)
        if published is None:
            log.warning("close %s: publication refused (%s): no profit share", msg.trade_id,
                        refused, extra={"bot_id": bot.id})
            _record_refusal(db, bot.id, bot.wallet_address, refused or "publication_refused")
            return None
        if published.profit_share_percent <= 0:
            return None
        filled = msg.base_filled if msg.base_filled is not None else (
            int((trade.filled_size or 0) * BASE))
        price = msg.fill_price if msg.fill_price is not None else (
            None if trade.price is None else int(trade.price * PRICE))
        context = {"bot_id": bot.id}
        if price is None or price <= 0 or filled == 0:
            log.warning("close %s has no fill price or size: no profit share", msg.trade_id,
                        extra=context)
            return None
        pnl = realized_pnl(CloseFill(msg.entry_base, msg.entry_quote, filled, price))
        amount = share_amount(pnl, published.profit_share_percent)
        if amount <= 0:
            log.info("close %s realised %d (quote units): no profit share", msg.trade_id, pnl,
                     extra=context)
            return None
        share_id, created = create_share(db, NewShare(
            trade_id=msg.trade_id, subscriber_bot_id=bot.id, published_bot_id=published.id,
            subscriber_wallet_address=bot.wallet_address,
            creator_wallet_address=published.creator_wallet_address,
            amount=to_quote_decimal(amount), realized_pnl=to_quote_decimal(pnl),
            profit_share_percent=published.profit_share_percent,
            ttl_s=self._schedule.ttl_s), ring=self._services.ring)
        log.info("profit share %s for close %s %s: %d of %d (quote units)", share_id,
                 msg.trade_id, "owed" if created else "already recorded", amount, pnl,
                 extra=context)
        PROFIT_SHARE_IOUS_PENDING.set(count_unpaid(db))
        return share_id

    # --- paying ------------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Start one background pass over the due shares (or ask for another after it)."""
        if self._sweeping:
            self._again = True
            return
        self._sweeping = True
        self.run_in_background(self._settler.pay_due, _Swept)

    def _swept(self, outcome: Outcome) -> None:
        """A sweep ended: log its failure, start the one asked for meanwhile."""
        self._sweeping = False
        if outcome.error is not None:
            log.error("profit share sweep failed: %s", type(outcome.error).__name__)
        if self._again:
            self._again = False
            self._sweep()


def _record_refusal(db: Any, bot_id: str, wallet: str, reason: str) -> None:
    """Record (never raise) that a share was not even recorded, and why."""
    try:
        record_refusal(db, trading_bot_id=bot_id, wallet_address=wallet, reason=reason[:64],
                       origin="profit_share", kind="withdraw", reduce_only=False)
    except Exception as exc:
        log.error("could not record the refusal (%s)", type(exc).__name__)
