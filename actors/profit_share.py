"""ProfitShareActor: realised PnL on subscriber closes, creator payments, and the IOU job.

On `SubscriberClosed` (told by a subscriber's BotActor after a close or reduce filled) the
actor computes the realised PnL of the fill against the entry before the close
(trading.profit_share) and, when positive, records the creator's share in pending_profit_shares
(once per closing trade) and pays it at once. A payment is ONE transaction signed by the
subscriber's agent key (legacy server-key path: subscribers have no session) that withdraws
from the subscriber's sub-account and transfers to the creator's quote token account
(venue.legacy_tx.profit_share_tx), sent through the LegacyExecutor's SendTransaction. A share
that could not be paid stays an IOU; a periodic tick (every 5 minutes) claims the due ones.

Guarded: right before the key is opened and again right before the payment is signed,
`security.trade_guard.guard_withdrawal` checks the emergency stops (any stop holds payments),
the IOU's MAC and cap (amount <= percent x PnL), its publication's terms MAC and its subscriber
bot's policy and binding MACs, and the payment ledger (profit_share_payments: a payment once
made is never made again, whatever the IOU's status says). A stop makes the IOU wait; any other
refusal voids it with "refused: <reason>"; every refusal is a trade_refusals row and counted.

Exactly once: the payment's signature and last valid block height are written to the share
before the executor sends it (inside the build step, which runs before the send). Whenever a
share carries such a signature, the next attempt first asks the chain: landed -> paid, without
sending; failed, or expired (block height past last valid, no status) -> safe to rebuild;
otherwise still pending -> ask again later. Only known failures count towards void.

The chain reads (blockhash with its last valid height, signature status) go through the
LegacyExecutor, the owner of RPC failover. All slow work (queries, RPC, the send) runs off
the mailbox with run_in_background.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from solders.hash import Hash
from solders.pubkey import Pubkey

from actors.legacy_executor import ExecutorClient
from actors.messages import SendTransaction
from actors.services import Services
from observability.trading_metrics import PROFIT_SHARE_IOUS_PENDING
from security.signing_keys import SigningRefused, open_bot_keypair
from security.trade_guard import guard_withdrawal
from storage.bots import Bot, get_bot
from storage.copy_trading import verified_publication
from storage.profit_shares import (
    NewShare,
    Share,
    claim_due,
    clear_attempt,
    count_unpaid,
    create_share,
    mark_paid,
    mark_retry,
    mark_void,
    payment_made,
    record_attempt,
)
from storage.trade_refusals import record_refusal
from supervision import Outcome, Refusal, SupervisedActor, request, whereis
from trading.profit_share import Close as CloseFill
from trading.profit_share import (
    IouSchedule,
    Retry,
    from_quote_decimal,
    realized_pnl,
    share_amount,
    to_quote_decimal,
)
from venue.legacy_tx import BuiltTx, profit_share_tx
from venue.positions import PerpPositionView
from venue.rpc_client import RpcError, error_label
from venue.tx_sender import SentTx
from venue.tx_status import TxState

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 10.0
SEND_TIMEOUT_S = 60.0
LEASE_S = 120.0
BATCH = 20
BASE = Decimal(10**9)
PRICE = Decimal(10**6)


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberClosed:
    """A subscriber bot's close/reduce order filled (told by its BotActor).

    `entry_base` / `entry_quote` are the position's base_asset_amount and quote_entry_amount
    read BEFORE the close (the TradingState the order was sized from). `base_filled` and
    `fill_price` (1e6) are the fill's; when None they are read from the trade row.
    """

    trade_id: str
    entry_base: int
    entry_quote: int
    base_filled: int | None = None
    fill_price: int | None = None


@dataclass(frozen=True)
class PayDue:
    """Claim and pay the due shares now (the periodic tick sends it too)."""


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _Swept:
    outcome: Outcome


# --- collaborators ---------------------------------------------------------------------------


class NotSent(Exception):
    """The payment is known not to have reached the chain (safe to send anew)."""


class GuardRefused(NotSent):
    """The withdrawal guard refused the payment before anything was signed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")
        self.reason = reason


_STOP_REASONS = frozenset({"global_emergency_stop", "wallet_emergency_stop",
                           "guard_unavailable"})  # the IOU waits; anything else: never paid


class ExecutorPayer:
    """Sends a built payment through the LegacyExecutor's SendTransaction."""

    def __init__(self, services: Services, timeout_s: float = SEND_TIMEOUT_S) -> None:
        self._services = services
        self._timeout_s = timeout_s

    def send(self, build: Callable[[Hash], BuiltTx]) -> SentTx:
        """Build (fresh blockhash), send and confirm; raises what the executor raised."""
        assert self._services.root is not None
        ref = whereis(self._services.root, "legacy_executor", ASK_TIMEOUT_S)
        return request(ref, SendTransaction(build), self._timeout_s)


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


def _error_label(exc: BaseException) -> str:
    """A bounded, secret-free label for a failure (no URLs, no key material)."""
    return str(exc)[:200] if isinstance(exc, NotSent) else error_label(exc)


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
        self._lease_s = lease_s
        self._batch = batch
        self._chain = chain or ExecutorClient(services)
        self._payer = payer or ExecutorPayer(services)
        self._worker = f"profit-share-{uuid.uuid4().hex[:16]}"
        self._sweeping = False
        self._again = False

    def on_start(self) -> None:
        """Resume IOUs (and crashed payments) at once."""
        self.actor_ref.tell(_Tick())  # resume IOUs (and crashed payments) at once

    def on_receive(self, message: Any) -> Any:
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
        trade = db.fetchone("SELECT trading_bot_id, filled_size, price, status, reduce_only"
                            " FROM bot_trades WHERE id = %s", (msg.trade_id,))
        if trade is None or not trade["reduce_only"]:
            raise Refusal(f"trade {msg.trade_id} is not a close")
        if trade["status"] not in ("completed", "partial"):
            return None
        bot = get_bot(db, trade["trading_bot_id"])
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
            int((trade["filled_size"] or 0) * BASE))
        price = msg.fill_price if msg.fill_price is not None else (
            None if trade["price"] is None else int(trade["price"] * PRICE))
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
        self.run_in_background(self._pay_due, _Swept)

    def _swept(self, outcome: Outcome) -> None:
        self._sweeping = False
        if outcome.error is not None:
            log.error("profit share sweep failed: %s", type(outcome.error).__name__)
        if self._again:
            self._again = False
            self._sweep()

    def _pay_due(self) -> int:
        """Claim the due shares of the subscriber bots this process holds and settle each;
        returns how many were handled."""
        db = self._services.db
        shares = claim_due(db, self._worker, self._batch, self._lease_s, self._services.holder)
        for share in shares:
            try:
                state = self._settle(share)
            except Exception as exc:  # unknown outcome: keep any recorded payment, try later
                state = "error"
                mark_retry(db, share.id, self._worker, self._schedule.interval_s,
                           _error_label(exc), count_attempt=False)
                log.error("profit share %s: %s", share.id, type(exc).__name__)
            log.info("profit share %s: %s", share.id, state)
        PROFIT_SHARE_IOUS_PENDING.set(count_unpaid(db))
        return len(shares)

    def _settle(self, share: Share) -> str:
        """One claimed share: resolve a recorded payment, void, or pay; returns what happened."""
        db, worker, schedule = self._services.db, self._worker, self._schedule
        last_error = share.last_error
        if share.inflight_signature is not None:
            assert share.inflight_last_valid_block_height is not None
            verdict = self._chain.verdict(share.inflight_signature,
                                          share.inflight_last_valid_block_height)
            if verdict.state is TxState.LANDED:
                mark_paid(db, share.id, share.inflight_signature)
                return "paid (found landed)"
            if verdict.state is TxState.PENDING:
                mark_retry(db, share.id, worker, schedule.interval_s, "payment unconfirmed",
                           count_attempt=False)
                return "payment still unconfirmed"
            last_error = f"payment {verdict.state}" + (
                f": {verdict.error}" if verdict.error else "")
            clear_attempt(db, share.id, worker, last_error)
        now = datetime.now(UTC)
        void = schedule.give_up(share.attempts, share.expires_at, now, last_error)
        if void is not None:
            mark_void(db, share.id, worker, void.reason)
            return "void"
        recorded: list[str] = []
        try:
            sent = self._pay(share, recorded)
        except GuardRefused as exc:
            return self._refused(share, exc.reason)
        except SigningRefused as exc:  # no grant (V3) or the legacy path is off: the IOU waits
            mark_retry(db, share.id, worker, schedule.interval_s,
                       f"signing_refused: {exc.reason}", count_attempt=False)
            return f"held (signing_refused: {exc.reason})"
        except Exception as exc:
            # Nothing can have been sent before the signature was recorded; after that only a
            # refusal of sendTransaction itself (preflight) is known not to have gone out.
            refused = isinstance(exc, RpcError) and exc.method == "sendTransaction"
            return self._failed(share, _error_label(exc), known=not recorded or refused)
        if sent.verdict.state is TxState.LANDED:
            mark_paid(db, share.id, sent.signature)
            return "paid"
        if sent.verdict.state is TxState.FAILED:
            return self._failed(share, sent.verdict.error or "payment failed", known=True)
        return self._failed(share, f"payment {sent.verdict.state}", known=False)

    def _refused(self, share: Share, reason: str) -> str:
        """The guard refused before signing: a stop makes the IOU wait; a payment already made
        puts its row back to paid; any other refusal voids it, with the reason."""
        db, worker = self._services.db, self._worker
        if reason in _STOP_REASONS:
            mark_retry(db, share.id, worker, self._schedule.interval_s, f"refused: {reason}",
                       count_attempt=False)
            return f"held ({reason})"
        if reason == "profit_share_already_paid":
            signature = payment_made(db, share)
            assert signature is not None
            mark_paid(db, share.id, signature)
            return "already paid: not paid again"
        mark_void(db, share.id, worker, f"refused: {reason}")
        return f"refused ({reason})"

    def _failed(self, share: Share, error: str, known: bool) -> str:
        """After a failed try: a known failure counts (and may void); an unknown one waits."""
        db = self._services.db
        if not known:
            mark_retry(db, share.id, self._worker, self._schedule.interval_s, error,
                       count_attempt=True)
            return f"unknown outcome ({error})"
        clear_attempt(db, share.id, self._worker, error)
        step = self._schedule.after_failure(share.attempts + 1, share.expires_at,
                                            datetime.now(UTC), error)
        if isinstance(step, Retry):
            mark_retry(db, share.id, self._worker, step.delay_s, error)
            return f"iou ({error})"
        mark_void(db, share.id, self._worker, step.reason, count_attempt=True)
        return "void"

    def _pay(self, share: Share, recorded: list[str]) -> SentTx:
        """Build, record (before sending) and send the payment of one share."""
        db, services = self._services.db, self._services
        bot = get_bot(db, share.subscriber_bot_id)
        self._guard(bot, share)  # before the key is even opened
        assert bot is not None
        agent = open_bot_keypair(db, services.ring, services.settings, bot.id,
                                 origin="profit_share")  # the one opener: grants, legacy path
        creator = Pubkey.from_string(share.creator_wallet_address)
        state = ExecutorClient(services, ASK_TIMEOUT_S).trading_state(
            agent.pubkey(), bot.drift_subaccount_id, bot.market_index)
        if state.user is None:
            raise NotSent("subscriber venue account missing")
        amount = from_quote_decimal(share.amount)

        def build(_executor_blockhash: Hash) -> BuiltTx:
            # Our own fresh blockhash, so that its last valid height is known and recorded.
            blockhash, last_valid = self._chain.latest_blockhash()
            self._guard(get_bot(db, share.subscriber_bot_id), share)  # right before signing
            built = profit_share_tx(services.profile, agent, amount, state.user.raw if
                                    state.user else None, creator, blockhash,
                                    sub_account_id=bot.drift_subaccount_id)
            if not record_attempt(db, share.id, self._worker, built.signature, last_valid):
                raise NotSent("claim lost before sending")
            recorded.append(built.signature)
            return built

        return self._payer.send(build)

    def _guard(self, bot: Bot | None, share: Share) -> None:
        """The withdrawal guard over the share as claimed; raises GuardRefused."""
        decision = guard_withdrawal(self._services.db, self._services.ring, bot, share,
                                    state_dir=str(self._services.settings["STATE_DIR"]))
        if not decision.allowed:
            raise GuardRefused(decision.reason or "refused")


def _record_refusal(db: Any, bot_id: str, wallet: str, reason: str) -> None:
    """Record (never raise) that a share was not even recorded, and why."""
    try:
        record_refusal(db, trading_bot_id=bot_id, wallet_address=wallet, reason=reason[:64],
                       origin="profit_share", kind="withdraw", reduce_only=False)
    except Exception as exc:
        log.error("could not record the refusal (%s)", type(exc).__name__)
