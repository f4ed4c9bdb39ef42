"""LegacyExecutor: the one owner of RPC failover state; reads accounts, sends on-chain orders.

Every RPC call runs on a background greenlet against the endpoint the failover state names, so
the mailbox never waits on the network. When a call finds its endpoint broken, the greenlet
asks the actor for a check; the actor runs the seed plan's probe-and-switch cycle (getSlot with
a 5 s timeout, backup on failure, primary again after the 3-minute cooldown) at most once at a
time and hands every waiting call the endpoint that answered. A periodic check brings the
primary back after the cooldown even when no call fails.

An on-chain order is built (its blockhash chosen) before its `before_send` fence runs, so a
transaction that passed the fence can land only until the last valid block height the fence
recorded. Its outcome is reported only when known (landed, failed, expired); a send whose
answer was lost is `unknown` with its signature, so nobody sends it again blindly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftpy.addresses import get_perp_market_public_key, get_user_account_public_key
from solders.hash import Hash
from solders.pubkey import Pubkey

from actors.messages import (
    LegacyOrder,
    LegacyResult,
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
    Endpoint,
    RpcError,
    RpcFailover,
    RpcTransportError,
    SolanaRpc,
    error_label,
)
from venue.swift_message import market_order
from venue.tx_sender import SentTx, send_and_confirm
from venue.tx_status import TxState, TxVerdict, tx_verdict

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 30.0
CONFIRM_TIMEOUT_S = 30.0


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
                 check_interval_s: float = CHECK_INTERVAL_S) -> None:
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

    def on_start(self) -> None:
        _set_endpoint_gauge(self._failover.state.active)
        self.send_later(self._check_interval_s, _PeriodicCheck())

    def on_exit(self) -> None:
        self._failover.primary.close()
        if self._failover.backup is not None:
            self._failover.backup.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ReadSlot):
            return self._serve(lambda rpc: rpc.get_slot())
        if isinstance(message, ReadBlockhash):
            return self._serve(lambda rpc: rpc.get_latest_blockhash())
        if isinstance(message, ReadSignature):
            return self._serve(lambda rpc: _verdict(rpc, message))
        if isinstance(message, ReadTradingState):
            return self._serve(lambda rpc: self._trading_state(rpc, message))
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
        """Probe and switch per the plan, one check at a time; answers the working client."""
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

    def _with_failover(self, op: Callable[[SolanaRpc], Any], client: SolanaRpc) -> Any:
        """Run a read; on a broken endpoint, wait for the check and run it once more."""
        try:
            return op(client)
        except RpcTransportError:
            check = self.actor_ref.ask(_Recheck(), timeout=CONFIRM_TIMEOUT_S)
            return op(check.future.get(timeout=2 * CONFIRM_TIMEOUT_S))

    # --- reads -------------------------------------------------------------------------------

    def _trading_state(self, rpc: SolanaRpc, want: ReadTradingState) -> TradingState:
        pid = self._profile.program_id
        user_key = get_user_account_public_key(pid, want.authority, want.sub_account_id)
        market_key = get_perp_market_public_key(pid, want.market_index)
        slot, (user, market) = rpc.get_multiple_accounts([user_key, market_key])
        if market is None:
            raise ValueError(f"perp market {want.market_index} has no account on this venue")
        return TradingState(
            user=read_user(user.data) if user is not None else None,
            market=read_perp_market(self._profile.program_id, market.data),
            slot=slot)

    # --- sending -----------------------------------------------------------------------------

    def _place_and_take(self, order: LegacyOrder) -> LegacyResult:
        started = time.monotonic()
        client = self._failover.active()
        want = ReadTradingState(order.authority, order.sub_account_id, order.market_index)

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            before = self._with_failover(lambda rpc: self._trading_state(rpc, want), client)
            if before.user is None:
                return self._result(order, LegacyResult("failed", error="UserNotFound",
                                                        elapsed_ms=elapsed()))
            blockhash, last_valid = client.get_latest_blockhash()
        except (RpcError, RpcTransportError, ValueError) as exc:
            return self._result(order, LegacyResult("failed", error=error_label(exc),
                                                    elapsed_ms=elapsed()))
        direction = 1 if order.direction == LONG else -1
        limit = order.oracle_price * (10_000 + direction * order.slippage_bps) // 10_000
        spec = market_order(direction=order.direction, base_asset_amount=order.base_amount,
                            market_index=order.market_index, oracle_price=order.oracle_price,
                            auction=AuctionConfig(0, 0, 1), reduce_only=order.reduce_only,
                            limit_price=limit)
        built = place_and_take_perp_order_tx(self._profile, order.signer, spec,
                                             before.user.raw, blockhash,
                                             authority=order.authority,
                                             sub_account_id=order.sub_account_id)
        if order.before_send is not None:  # the fence: LeaseLost reaches the asker, unsent
            order.before_send(built.signature, last_valid)
        try:
            sent = send_and_confirm(client, built, last_valid, CONFIRM_TIMEOUT_S)
        except RpcError as exc:  # refused before broadcast (preflight): known, not sent
            return self._result(order, LegacyResult("failed", built.signature,
                                                    error=error_label(exc), elapsed_ms=elapsed()))
        except RpcTransportError:  # the answer was lost: it may or may not have been sent
            return self._result(order, LegacyResult("unknown", built.signature,
                                                    error="send_unanswered", elapsed_ms=elapsed()))
        return self._result(order, self._settle(order, before, sent, elapsed))

    def _settle(self, order: LegacyOrder, before: TradingState, sent: SentTx,
                elapsed: Callable[[], int]) -> LegacyResult:
        state = sent.verdict.state
        if state is TxState.PENDING:
            return LegacyResult("unknown", sent.signature, error="unconfirmed",
                                elapsed_ms=elapsed())
        if state is not TxState.LANDED:
            return LegacyResult("failed", sent.signature, error=sent.verdict.error or str(state),
                                elapsed_ms=elapsed())
        client = self._failover.active()
        want = ReadTradingState(order.authority, order.sub_account_id, order.market_index)
        after = self._with_failover(lambda rpc: self._trading_state(rpc, want), client)
        assert before.user is not None and after.user is not None
        fill = fill_from_delta(before.user.perp(order.market_index),
                               after.user.perp(order.market_index))
        filled = abs(fill.base_filled)
        status = ("filled" if filled >= order.base_amount else
                  "partial" if filled > 0 else "not_filled")
        return LegacyResult(status, sent.signature, filled, fill.avg_price, elapsed_ms=elapsed())

    def _result(self, order: LegacyOrder, result: LegacyResult) -> LegacyResult:
        symbol = self._profile.market(order.market_index).symbol
        LEGACY_ORDERS.labels(market=symbol, outcome=result.state).inc()
        return result

    def _send(self, build: Callable[[Hash], BuiltTx]) -> SentTx:
        client = self._failover.active()
        blockhash, last_valid = client.get_latest_blockhash()
        return send_and_confirm(client, build(blockhash), last_valid, CONFIRM_TIMEOUT_S)


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
        """A fresh blockhash and the last block height at which a tx using it can land."""
        return self._ask(ReadBlockhash(), self._timeout_s)

    def verdict(self, signature: str, last_valid_block_height: int) -> TxVerdict:
        """What became of a sent transaction."""
        return self._ask(ReadSignature(signature, last_valid_block_height), self._timeout_s)

    def place_and_take(self, order: LegacyOrder, timeout_s: float) -> LegacyResult:
        """Send an on-chain order and wait (up to `timeout_s`) for its outcome."""
        return self._ask(PlaceAndTake(order), timeout_s)
