"""LegacyExecutor: the one owner of RPC failover state; reads accounts, sends on-chain orders.

Every RPC call runs on a background greenlet against the endpoint the failover state names, so
the mailbox never waits on the network. When a call finds its endpoint broken, the greenlet
asks the actor for a check; the actor runs the probe-and-switch cycle (getSlot with a 5 s
timeout, backup on failure, primary again after the 3-minute cooldown) at most once at a
time and hands every waiting call the endpoint that answered. A periodic check brings the
primary back after the cooldown even when no call fails.

Orders sent together share their reads: one latest blockhash a slot, their User and market
accounts in batched getMultipleAccounts (before the send and after it landed), and one status
read a slot for every open transaction (venue.tx_sender.Confirmations). At most
`max_sends_in_flight` sendTransaction calls are on the wire at once; waiting for a confirmation
holds none.

An on-chain order is built (its blockhash chosen) before its `before_send` fence runs, so a
transaction that passed the fence can land only until the last valid block height the fence
recorded. A send refused with HTTP 429 ran nothing: the same signed transaction is sent again
after a backoff while its blockhash lives (same signature: it executes at most once), and one
refused to the end is reported not sent (`failed`). A send whose answer was lost is sent again
and confirmed like any other. Its outcome is reported only when known (landed, failed,
expired): `unknown`, with its signature, only when no status could be read before the order's
deadline, so nobody sends it again blindly.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import pykka
from driftpy.addresses import get_perp_market_public_key, get_user_account_public_key
from gevent.lock import BoundedSemaphore
from solders.hash import Hash
from solders.pubkey import Pubkey

from actors.messages import (
    LegacyOrder,
    LegacyResult,
    LegacyState,
    PlaceAndTake,
    ReadAccounts,
    ReadBlockhash,
    ReadSignature,
    ReadSlot,
    ReadTradingState,
    RpcStatus,
    SendTransaction,
    TradingState,
)
from actors.services import Services
from observability.trading_metrics import LEGACY_ORDERS, RPC_ACTIVE_ENDPOINT
from supervision import Outcome, Pending, SupervisedActor, request, whereis
from venue.auction import LONG, AuctionConfig
from venue.legacy_tx import BuiltTx, place_and_take_perp_order_tx
from venue.perp_market import read_perp_market
from venue.positions import fill_from_delta, read_user
from venue.profiles import VenueProfile
from venue.rpc_client import (
    AccountData,
    AllRpcDown,
    RpcError,
    RpcTransportError,
    SignatureStatus,
    SolanaRpc,
    error_label,
)
from venue.rpc_failover import Endpoint, RpcFailover
from venue.shared_reads import AccountBatcher, SharedRead
from venue.swift_message import OrderSpec, market_order
from venue.tx_sender import RESEND_FIRST_S, RESEND_MAX_S, Confirmations, SentTx, broadcast
from venue.tx_status import TxState, TxVerdict, tx_verdict

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 30.0
CHECK_TIMEOUT_S = 30.0
ORDER_TIMEOUT_S = 120.0  # reads, sends and confirmation of one order (its asker waits 130 s)
SEND_TIMEOUT_S = 45.0  # the same for a SendTransaction (the profit share waits 60 s)
MAX_SENDS_IN_FLIGHT = 16
BLOCKHASH_LIFE_BLOCKS = 150  # a blockhash stays valid for 150 blocks (at most one a slot)
_READ_ERRORS = (RpcError, RpcTransportError, AllRpcDown, ValueError, pykka.Timeout)


@dataclass(frozen=True)
class _Recheck:
    pass


@dataclass(frozen=True)
class _Checked:
    outcome: Outcome


@dataclass(frozen=True)
class _PeriodicCheck:
    pass


def _set_endpoint_gauge(active: Endpoint) -> None:
    for endpoint in Endpoint:
        RPC_ACTIVE_ENDPOINT.labels(endpoint=endpoint.value).set(1 if endpoint is active else 0)


class LegacyExecutor(SupervisedActor):
    """Owns RpcFailover; serves reads and on-chain orders from background greenlets."""

    def __init__(self, profile: VenueProfile, slippage_bps: int = 50,
                 check_interval_s: float = CHECK_INTERVAL_S,
                 max_sends_in_flight: int = MAX_SENDS_IN_FLIGHT) -> None:
        super().__init__()
        self._profile = profile
        self._slippage_bps = slippage_bps
        self._check_interval_s = check_interval_s
        primary = SolanaRpc(profile.rpc_primary_url, label="primary")
        backup = (SolanaRpc(profile.rpc_backup_url, label="backup")
                  if profile.rpc_backup_url else None)
        self._failover = RpcFailover(primary, backup,
                                     on_switch=lambda _before, after: _set_endpoint_gauge(after))
        self._check: Pending | None = None
        slot_s = profile.slot_time_ms / 1000
        self._blockhash_life_s = BLOCKHASH_LIFE_BLOCKS * slot_s
        self._sends = BoundedSemaphore(max_sends_in_flight)
        self._blockhash = SharedRead(
            lambda: self._with_failover(lambda rpc: rpc.get_latest_blockhash()), slot_s)
        self._accounts = AccountBatcher(
            lambda keys: self._with_failover(lambda rpc: rpc.get_multiple_accounts(keys)))
        self._confirmations = Confirmations(self._statuses, slot_s)

    def on_start(self) -> None:
        _set_endpoint_gauge(self._failover.state.active)
        self.send_later(self._check_interval_s, _PeriodicCheck())

    def on_exit(self) -> None:
        self._confirmations.close()
        self._failover.primary.close()
        if self._failover.backup is not None:
            self._failover.backup.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ReadSlot):
            return self._serve(lambda rpc: rpc.get_slot())
        if isinstance(message, ReadBlockhash):
            return self.answer_later(self._blockhash.get)
        if isinstance(message, ReadSignature):
            return self._serve(lambda rpc: _verdict(rpc, message))
        if isinstance(message, ReadTradingState):
            return self.answer_later(lambda: self._trading_state(message))
        if isinstance(message, ReadAccounts):
            return self._serve(lambda rpc: rpc.get_multiple_accounts(list(message.keys)))
        if isinstance(message, PlaceAndTake):
            return self.answer_later(lambda: self._place_and_take(message.order))
        if isinstance(message, SendTransaction):
            return self.answer_later(lambda: self._send(message.build))
        if isinstance(message, _Recheck):
            return self._recheck()
        if isinstance(message, _Checked):
            return self._checked(message.outcome)
        if isinstance(message, _PeriodicCheck):
            if self._check is None:
                self._recheck()
            self.send_later(self._check_interval_s, _PeriodicCheck())
            return None
        if isinstance(message, RpcStatus):
            state = self._failover.state
            return {"active": state.active.value, "checking": self._check is not None,
                    "consecutive_primary_failures": state.consecutive_primary_failures,
                    "switched_to_backup_at": state.switched_to_backup_at}
        return super().on_receive(message)

    # --- failover ----------------------------------------------------------------------------

    def _recheck(self) -> Pending:
        """RpcFailover's probe and switch, one check at a time; answers the working client."""
        if self._check is None:
            self._check = self.answer_later(self._failover.working_client, then=_Checked)
        return self._check

    def _checked(self, outcome: Outcome) -> None:
        self._check = None
        if outcome.error is not None:
            log.error("no RPC endpoint answers: %s", type(outcome.error).__name__)

    def _serve(self, op: Callable[[SolanaRpc], Any]) -> Pending:
        client = self._failover.active()
        return self.answer_later(lambda: self._with_failover(op, client))

    def _with_failover(self, op: Callable[[SolanaRpc], Any],
                       client: SolanaRpc | None = None) -> Any:
        """Run a read; on a broken endpoint, wait for the check and run it once more."""
        try:
            return op(client if client is not None else self._failover.active())
        except RpcTransportError:
            return op(self._working())

    def _working(self) -> SolanaRpc:
        """The endpoint the (shared) failover check found answering."""
        check = self.actor_ref.ask(_Recheck(), block=True, timeout=CHECK_TIMEOUT_S)
        return check.future.get(timeout=2 * CHECK_TIMEOUT_S)

    def _checked_after_failure(self) -> None:
        """After a failed send: wait for the failover check, whatever it finds (the next
        attempt goes to the endpoint it leaves active)."""
        with contextlib.suppress(Exception):
            self._working()

    # --- reads -------------------------------------------------------------------------------

    def _trading_state(self, want: ReadTradingState) -> TradingState:
        """User and market accounts, read in one batch with whatever else is asked now."""
        pid = self._profile.program_id
        user_key = get_user_account_public_key(pid, want.authority, want.sub_account_id)
        market_key = get_perp_market_public_key(pid, want.market_index)
        slot, (user, market) = self._accounts.get([user_key, market_key])
        if market is None:
            raise ValueError(f"perp market {want.market_index} has no account on this venue")
        return TradingState(
            user=read_user(user.data) if user is not None else None,
            market=read_perp_market(self._profile.program_id, market.data),
            slot=slot)

    # --- sending -----------------------------------------------------------------------------

    def _place_and_take(self, order: LegacyOrder) -> LegacyResult:
        started = time.monotonic()
        deadline = started + ORDER_TIMEOUT_S
        want = ReadTradingState(order.authority, order.sub_account_id, order.market_index)

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            before = self._trading_state(want)
            if before.user is None:
                return self._result(order, LegacyResult(LegacyState.FAILED, error="UserNotFound",
                                                        elapsed_ms=elapsed()))
            blockhash, last_valid = self._blockhash.get()
        except _READ_ERRORS as exc:  # nothing was sent
            return self._result(order, LegacyResult(LegacyState.FAILED, error=error_label(exc),
                                                    elapsed_ms=elapsed()))
        valid_until = min(deadline, time.monotonic() + self._blockhash_life_s)
        built = place_and_take_perp_order_tx(self._profile, order.signer, _spec(order),
                                             before.user.raw, blockhash,
                                             authority=order.authority,
                                             sub_account_id=order.sub_account_id)
        if order.before_send is not None:  # the fence: LeaseLost reaches the asker, unsent
            order.before_send(built.signature, last_valid)
        try:
            self._broadcast(built, valid_until)
        except RpcError as exc:  # refused at preflight, or every send refused: not sent
            return self._result(order, LegacyResult(LegacyState.FAILED, built.signature,
                                                    error=error_label(exc), elapsed_ms=elapsed()))
        verdict = self._confirmations.wait(built.signature, last_valid, deadline)
        return self._result(order, self._settle(order, before, built.signature, verdict,
                                                deadline, elapsed))

    def _settle(self, order: LegacyOrder, before: TradingState, signature: str,
                verdict: TxVerdict, deadline: float, elapsed: Callable[[], int]) -> LegacyResult:
        if verdict.state is TxState.PENDING:
            return LegacyResult(LegacyState.UNKNOWN, signature, error="unconfirmed",
                                elapsed_ms=elapsed())
        if verdict.state is not TxState.LANDED:
            return LegacyResult(LegacyState.FAILED, signature,
                                error=verdict.error or str(verdict.state), elapsed_ms=elapsed())
        want = ReadTradingState(order.authority, order.sub_account_id, order.market_index)
        try:
            after = self._read_until(want, deadline)
        except _READ_ERRORS:  # it landed; what it filled is for reconciliation to read
            return LegacyResult(LegacyState.UNKNOWN, signature, error="fill_unread",
                                elapsed_ms=elapsed())
        assert before.user is not None and after.user is not None
        fill = fill_from_delta(before.user.perp(order.market_index),
                               after.user.perp(order.market_index))
        filled = abs(fill.base_filled)
        status = (LegacyState.FILLED if filled >= order.base_amount else
                  LegacyState.PARTIAL if filled > 0 else LegacyState.NOT_FILLED)
        return LegacyResult(status, signature, filled, fill.avg_price, elapsed_ms=elapsed())

    def _read_until(self, want: ReadTradingState, until: float) -> TradingState:
        """A read after a landed transaction: retried with backoff (a 429 is no answer)."""
        pause = RESEND_FIRST_S
        while True:
            try:
                return self._trading_state(want)
            except _READ_ERRORS:
                if time.monotonic() + pause >= until:
                    raise
            gevent.sleep(pause)  # the read's backoff, not a wait for things to settle
            pause = min(RESEND_MAX_S, pause * 2)

    def _result(self, order: LegacyOrder, result: LegacyResult) -> LegacyResult:
        symbol = self._profile.market(order.market_index).symbol
        LEGACY_ORDERS.labels(market=symbol, outcome=result.state).inc()
        return result

    def _broadcast(self, built: BuiltTx, until: float) -> None:
        """Send within the bound on sends in flight, with a failover check after a failure."""

        def attempt() -> None:
            with self._sends:
                self._failover.active().send_transaction(built.raw)

        broadcast(attempt, until, recover=self._checked_after_failure)

    def _statuses(self, signatures: list[str]) -> tuple[int, list[SignatureStatus | None]]:
        """Block height, then the signatures' statuses, from one endpoint (venue.tx_status)."""
        return self._with_failover(lambda rpc: (rpc.get_block_height(),
                                                rpc.get_signature_statuses(signatures)))

    def _send(self, build: Callable[[Hash], BuiltTx]) -> SentTx:
        started = time.monotonic()
        deadline = started + SEND_TIMEOUT_S
        blockhash, last_valid = self._blockhash.get()
        built = build(blockhash)
        self._broadcast(built, min(deadline, started + self._blockhash_life_s))
        verdict = self._confirmations.wait(built.signature, last_valid, deadline)
        return SentTx(built.signature, verdict, time.monotonic() - started)


def _spec(order: LegacyOrder) -> OrderSpec:
    """A market order taking liquidity at once, limited to the order's slippage."""
    direction = 1 if order.direction == LONG else -1
    limit = order.oracle_price * (10_000 + direction * order.slippage_bps) // 10_000
    return market_order(direction=order.direction, base_asset_amount=order.base_amount,
                        market_index=order.market_index, oracle_price=order.oracle_price,
                        auction=AuctionConfig(0, 0, 1), reduce_only=order.reduce_only,
                        limit_price=limit)


def _verdict(rpc: SolanaRpc, want: ReadSignature) -> TxVerdict:
    """A signature's fate: never a guess (see venue.tx_status)."""
    height = rpc.get_block_height()
    (status,) = rpc.get_signature_statuses([want.signature], search_history=True)
    return tx_verdict(status, block_height=height,
                      last_valid_block_height=want.last_valid_block_height)


class ExecutorClient:
    """How other actors reach the LegacyExecutor: by name through the tree, on every call."""

    def __init__(self, services: Services, timeout_s: float = 10.0) -> None:
        self._services = services
        self._timeout_s = timeout_s

    def _ask(self, message: Any, timeout_s: float) -> Any:
        assert self._services.root is not None, "the supervision tree is not started"
        ref = whereis(self._services.root, "legacy_executor", self._timeout_s)
        return request(ref, message, timeout_s)

    def trading_state(self, authority: Pubkey, sub_account_id: int,
                      market_index: int) -> TradingState:
        """The user's account, the market's account and the slot, read together."""
        return self._ask(ReadTradingState(authority, sub_account_id, market_index),
                         self._timeout_s)

    def slot(self) -> int:
        """The current slot."""
        return self._ask(ReadSlot(), self._timeout_s)

    def accounts(self, keys: tuple[Pubkey, ...]) -> tuple[int, list[AccountData | None]]:
        """Raw accounts and the read's context slot (100 keys per RPC call)."""
        return self._ask(ReadAccounts(keys), self._timeout_s)

    def latest_blockhash(self) -> tuple[Hash, int]:
        """The latest blockhash (read at most once a slot) and the last block height at which
        a transaction using it can land."""
        return self._ask(ReadBlockhash(), self._timeout_s)

    def verdict(self, signature: str, last_valid_block_height: int) -> TxVerdict:
        """What became of a sent transaction."""
        return self._ask(ReadSignature(signature, last_valid_block_height), self._timeout_s)

    def place_and_take(self, order: LegacyOrder, timeout_s: float) -> LegacyResult:
        """Send an on-chain order and wait (up to `timeout_s`) for its outcome."""
        return self._ask(PlaceAndTake(order), timeout_s)
