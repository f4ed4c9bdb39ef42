"""Send a signed transaction and follow it until its outcome is known (landed, failed, expired).

There is no push channel here (no websocket), so signature statuses are polled. A one-off
sender (the CLI) polls its own transaction (`send_and_confirm`); the daemon follows all its open
transactions together (`Confirmations`: one getBlockHeight and one getSignatureStatuses per
slot, whatever their number) and sends through `broadcast`, which knows what each failed send
means:

- HTTP 429 is a refusal: the provider ran nothing, so the same signed bytes go again after a
  backoff (same signature: the chain executes it at most once). Refused until its blockhash
  expired, the transaction is known not to be out there (`NotAccepted`).
- A lost answer (timeout, reset) means it may be out there: it is sent again as well, and from
  then on only its confirmation says what became of it.

A 429 while confirming is not an outcome either: polling goes on, backing off. PENDING at the
deadline is reported as such: the caller must not assume failure and resend (see
venue.tx_status).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gevent
from gevent.event import AsyncResult

from venue.legacy_tx import BuiltTx
from venue.rpc_client import (
    RpcError,
    RpcRateLimited,
    RpcTransportError,
    SignatureStatus,
    SolanaRpc,
)
from venue.tx_status import TxState, TxVerdict, tx_verdict

log = logging.getLogger(__name__)

FIRST_POLL_S = 0.2
MAX_POLL_S = 1.0
RESEND_FIRST_S = 0.25  # first pause after a refused or unanswered send
RESEND_MAX_S = 2.0
STATUS_BACKOFF_MAX_S = 4.0  # longest pause between status reads that keep failing

StatusRead = Callable[[list[str]], tuple[int, list[SignatureStatus | None]]]


@dataclass(frozen=True)
class SentTx:
    """A transaction's signature and what became of it."""

    signature: str
    verdict: TxVerdict
    elapsed_s: float


class NotAccepted(RpcError):
    """Every send was refused (HTTP 429) until the sender gave up: the transaction is not out
    there (a refused send runs nothing)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, "sendTransaction", 429, "every send was rate limited")


def broadcast(attempt: Callable[[], object], until: float,
              recover: Callable[[], None] = lambda: None) -> None:
    """Send (`attempt`: one sendTransaction of the same signed bytes) until an endpoint takes
    it, resending after 429s and lost answers until `until` (the blockhash's end).

    Returns once the transaction may be out there. Raises the node's RpcError when it refuses
    the transaction (at preflight) and no earlier attempt may have gone out, NotAccepted when
    every attempt was refused. `recover` runs after each failed attempt (the caller's
    failover check)."""
    maybe_out = False
    endpoint = "rpc"
    pause = RESEND_FIRST_S
    while True:
        try:
            attempt()
            return
        except RpcRateLimited as exc:
            endpoint = exc.endpoint
        except RpcError:
            if maybe_out:  # an earlier copy may have landed: only its status can tell
                return
            raise
        except RpcTransportError:
            maybe_out = True
        if time.monotonic() + pause >= until:
            if maybe_out:
                return
            raise NotAccepted(endpoint)
        recover()
        gevent.sleep(pause)  # the resend backoff, not a wait for things to settle
        pause = min(RESEND_MAX_S, pause * 2)


@dataclass
class _Waiting:
    last_valid_block_height: int
    verdict: AsyncResult
    waiters: int = 0


class Confirmations:
    """Every open transaction of one owner followed together: each tick (a slot) one status
    read for all of them (`read`: block height, then statuses, from one endpoint) decides
    those it can, so the RPC cost is per slot, not per transaction and poll.

    For the greenlets of one hub (no locks); the poll runs while anything is waited for."""

    def __init__(self, read: StatusRead, tick_s: float) -> None:
        self._read = read
        self._tick_s = tick_s
        self._waiting: dict[str, _Waiting] = {}
        self._poll: gevent.Greenlet | None = None

    def close(self) -> None:
        """Stop polling (the owner is exiting)."""
        if self._poll is not None:
            self._poll.kill(block=False)

    def wait(self, signature: str, last_valid_block_height: int, until: float) -> TxVerdict:
        """The transaction's verdict, or PENDING if none is known by `until` (monotonic)."""
        entry = self._waiting.setdefault(
            signature, _Waiting(last_valid_block_height, AsyncResult()))
        entry.waiters += 1
        if self._poll is None:
            self._poll = gevent.spawn(self._run)
        try:
            return entry.verdict.get(timeout=max(0.0, until - time.monotonic()))
        except gevent.Timeout:
            return TxVerdict(TxState.PENDING)
        finally:
            entry.waiters -= 1
            if entry.waiters == 0 and self._waiting.get(signature) is entry:
                del self._waiting[signature]

    def _run(self) -> None:
        pause = self._tick_s
        try:
            while self._waiting:
                gevent.sleep(pause)  # the poll interval (a slot), longer while reads fail
                pause = self._tick_s if self._tick(list(self._waiting)) else min(
                    STATUS_BACKOFF_MAX_S, pause * 2)
        finally:
            self._poll = None

    def _tick(self, signatures: Sequence[str]) -> bool:
        """One read for every open signature; False when the read failed (nothing decided)."""
        if not signatures:
            return True
        try:
            height, statuses = self._read(list(signatures))
        except Exception as exc:  # a 429 or an outage is not an outcome: poll on, slower
            log.warning("transaction status read failed: %s", type(exc).__name__)
            return False
        for signature, status in zip(signatures, statuses, strict=True):
            entry = self._waiting.get(signature)
            if entry is None:
                continue
            verdict = tx_verdict(status, block_height=height,
                                 last_valid_block_height=entry.last_valid_block_height)
            if verdict.state is not TxState.PENDING:
                del self._waiting[signature]
                entry.verdict.set(verdict)
        return True


def confirm(rpc: SolanaRpc, signature: str, last_valid_block_height: int,
            timeout_s: float) -> TxVerdict:
    """Poll until the signature's fate is known or `timeout_s` passes (then PENDING); a poll
    refused with 429 decides nothing and is simply followed by the next."""
    deadline = time.monotonic() + timeout_s
    pause = FIRST_POLL_S
    while True:
        verdict = TxVerdict(TxState.PENDING)
        try:
            height = rpc.get_block_height()
            (status,) = rpc.get_signature_statuses([signature])
            verdict = tx_verdict(status, block_height=height,
                                 last_valid_block_height=last_valid_block_height)
        except RpcRateLimited:
            pass
        if verdict.state is not TxState.PENDING or time.monotonic() + pause > deadline:
            return verdict
        gevent.sleep(pause)  # the protocol's poll interval, not a wait for things to settle
        pause = min(MAX_POLL_S, pause * 1.5)


def send_and_confirm(rpc: SolanaRpc, built: BuiltTx, last_valid_block_height: int,
                     timeout_s: float) -> SentTx:
    """sendTransaction, then confirm; RPC errors of the send itself propagate."""
    started = time.monotonic()
    rpc.send_transaction(built.raw)
    verdict = confirm(rpc, built.signature, last_valid_block_height, timeout_s)
    return SentTx(built.signature, verdict, time.monotonic() - started)
