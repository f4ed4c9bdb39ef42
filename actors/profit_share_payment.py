"""Paying the due profit shares: each exactly once, behind the withdrawal guard.

A payment is ONE transaction signed by the subscriber's agent key (legacy server-key path:
subscribers have no session) that withdraws from the subscriber's sub-account and transfers to
the creator's quote token account (venue.legacy_tx.profit_share_tx), sent through the
LegacyExecutor's SendTransaction. A share that could not be paid stays an IOU.

Guarded: right before the key is opened and again right before the payment is signed,
`custody.trade_guard.guard_withdrawal` checks the emergency stops (any stop holds payments),
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
LegacyExecutor, the owner of RPC failover.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from solders.hash import Hash
from solders.pubkey import Pubkey

from actors.legacy_executor import ExecutorClient
from actors.messages import SendTransaction
from actors.services import Services
from custody.signing_keys import SigningRefused, open_bot_keypair
from custody.trade_guard import guard_withdrawal
from observability.trading_metrics import PROFIT_SHARE_IOUS_PENDING
from storage.bots import Bot, get_bot
from storage.profit_shares import (
    Share,
    claim_due,
    clear_attempt,
    count_unpaid,
    mark_paid,
    mark_retry,
    mark_void,
    payment_made,
    record_attempt,
)
from supervision import request, whereis
from trading.profit_share import IouSchedule, Retry, from_quote_decimal
from venue.legacy_tx import BuiltTx, profit_share_tx
from venue.rpc_client import RpcError, error_label
from venue.tx_sender import SentTx
from venue.tx_status import TxState

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 10.0
SEND_TIMEOUT_S = 60.0


class NotSent(Exception):
    """The payment is known not to have reached the chain (safe to send anew)."""


class GuardRefused(NotSent):
    """The withdrawal guard refused the payment before anything was signed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")
        self.reason = reason


class Settled(StrEnum):
    """What one pass did with a claimed share (logged per share, with a detail)."""

    PAID = "paid"  # its payment landed (now, or found landed): the share is paid
    ALREADY_PAID = "already_paid"  # the ledger holds its payment: paid again on its row only
    UNCONFIRMED = "unconfirmed"  # a recorded payment's fate is still unknown: asked later
    HELD = "held"  # it waits: a stop, the guard could not tell, or no grant to sign with
    REFUSED = "refused"  # the guard refused its rows: void
    VOID = "void"  # given up (expired, or too many known failures)
    IOU = "iou"  # a known failure: tried again later
    UNKNOWN = "unknown"  # the try's outcome is unknown: tried again later, resolved first
    ERROR = "error"  # the pass raised: tried again later, any recorded payment kept


_Step = tuple[Settled, str | None]  # what happened, and why or how

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


def _error_label(exc: BaseException) -> str:
    """A bounded, secret-free label for a failure (no URLs, no key material)."""
    return str(exc)[:200] if isinstance(exc, NotSent) else error_label(exc)


class ShareSettler:
    """Claims the due shares of the bots this process holds and settles each exactly once."""

    def __init__(self, services: Services, schedule: IouSchedule, lease_s: float, batch: int,
                 chain: ExecutorClient, payer: ExecutorPayer) -> None:
        self._services = services
        self._schedule = schedule
        self._lease_s = lease_s
        self._batch = batch
        self._chain = chain
        self._payer = payer
        self._worker = f"profit-share-{uuid.uuid4().hex[:16]}"

    def pay_due(self) -> int:
        """Claim the due shares of the subscriber bots this process holds and settle each;
        returns how many were handled."""
        db = self._services.db
        shares = claim_due(db, self._worker, self._batch, self._lease_s, self._services.holder)
        for share in shares:
            try:
                settled, detail = self._settle(share)
            except Exception as exc:  # unknown outcome: keep any recorded payment, try later
                settled, detail = Settled.ERROR, None
                mark_retry(db, share.id, self._worker, self._schedule.interval_s,
                           _error_label(exc), count_attempt=False)
                log.error("profit share %s: %s", share.id, type(exc).__name__)
            log.info("profit share %s: %s%s", share.id, settled,
                     "" if detail is None else f" ({detail})")
        PROFIT_SHARE_IOUS_PENDING.set(count_unpaid(db))
        return len(shares)

    def _settle(self, share: Share) -> _Step:
        """One claimed share: resolve a recorded payment, void, or pay; returns what happened."""
        db, worker, schedule = self._services.db, self._worker, self._schedule
        last_error = share.last_error
        if share.inflight_signature is not None:
            assert share.inflight_last_valid_block_height is not None
            verdict = self._chain.verdict(share.inflight_signature,
                                          share.inflight_last_valid_block_height)
            if verdict.state is TxState.LANDED:
                mark_paid(db, share.id, share.inflight_signature)
                return Settled.PAID, "found landed"
            if verdict.state is TxState.PENDING:
                mark_retry(db, share.id, worker, schedule.interval_s, "payment unconfirmed",
                           count_attempt=False)
                return Settled.UNCONFIRMED, None
            last_error = f"payment {verdict.state}" + (
                f": {verdict.error}" if verdict.error else "")
            clear_attempt(db, share.id, worker, last_error)
        now = datetime.now(UTC)
        void = schedule.give_up(share.attempts, share.expires_at, now, last_error)
        if void is not None:
            mark_void(db, share.id, worker, void.reason)
            return Settled.VOID, void.reason
        recorded: list[str] = []
        try:
            sent = self._pay(share, recorded)
        except GuardRefused as exc:
            return self._refused(share, exc.reason)
        except SigningRefused as exc:  # no grant (V3) or the legacy path is off: the IOU waits
            mark_retry(db, share.id, worker, schedule.interval_s,
                       f"signing_refused: {exc.reason}", count_attempt=False)
            return Settled.HELD, f"signing_refused: {exc.reason}"
        except Exception as exc:
            # Nothing can have been sent before the signature was recorded; after that only a
            # refusal of sendTransaction itself (preflight) is known not to have gone out.
            refused = isinstance(exc, RpcError) and exc.method == "sendTransaction"
            return self._failed(share, _error_label(exc), known=not recorded or refused)
        if sent.verdict.state is TxState.LANDED:
            mark_paid(db, share.id, sent.signature)
            return Settled.PAID, None
        if sent.verdict.state is TxState.FAILED:
            return self._failed(share, sent.verdict.error or "payment failed", known=True)
        return self._failed(share, f"payment {sent.verdict.state}", known=False)

    def _refused(self, share: Share, reason: str) -> _Step:
        """The guard refused before signing: a stop makes the IOU wait; a payment already made
        puts its row back to paid; any other refusal voids it, with the reason."""
        db, worker = self._services.db, self._worker
        if reason in _STOP_REASONS:
            mark_retry(db, share.id, worker, self._schedule.interval_s, f"refused: {reason}",
                       count_attempt=False)
            return Settled.HELD, reason
        if reason == "profit_share_already_paid":
            signature = payment_made(db, share)
            assert signature is not None
            mark_paid(db, share.id, signature)
            return Settled.ALREADY_PAID, None
        mark_void(db, share.id, worker, f"refused: {reason}")
        return Settled.REFUSED, reason

    def _failed(self, share: Share, error: str, known: bool) -> _Step:
        """After a failed try: a known failure counts (and may void); an unknown one waits."""
        db = self._services.db
        if not known:
            mark_retry(db, share.id, self._worker, self._schedule.interval_s, error,
                       count_attempt=True)
            return Settled.UNKNOWN, error
        clear_attempt(db, share.id, self._worker, error)
        step = self._schedule.after_failure(share.attempts + 1, share.expires_at,
                                            datetime.now(UTC), error)
        if isinstance(step, Retry):
            mark_retry(db, share.id, self._worker, step.delay_s, error)
            return Settled.IOU, error
        mark_void(db, share.id, self._worker, step.reason, count_attempt=True)
        return Settled.VOID, step.reason

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
                                    state_dir=str(self._services.settings.state_dir))
        if not decision.allowed:
            raise GuardRefused(decision.reason or "refused")
