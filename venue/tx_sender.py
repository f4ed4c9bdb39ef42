"""Send a signed transaction and follow it until its outcome is known (landed, failed, expired).

There is no push channel here (no websocket), so the signature status is polled; the poll
interval grows, and the whole wait is bounded. PENDING at the deadline is reported as such:
the caller must not assume failure and resend (see venue.tx_status).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gevent

from venue.legacy_tx import BuiltTx
from venue.rpc_client import SolanaRpc
from venue.tx_status import TxState, TxVerdict, tx_verdict

FIRST_POLL_S = 0.2
MAX_POLL_S = 1.0


@dataclass(frozen=True)
class SentTx:
    """A transaction's signature and what became of it."""

    signature: str
    verdict: TxVerdict
    elapsed_s: float


def confirm(rpc: SolanaRpc, signature: str, last_valid_block_height: int,
            timeout_s: float) -> TxVerdict:
    """Poll until the signature's fate is known or `timeout_s` passes (then PENDING)."""
    deadline = time.monotonic() + timeout_s
    pause = FIRST_POLL_S
    while True:
        height = rpc.get_block_height()
        (status,) = rpc.get_signature_statuses([signature])
        verdict = tx_verdict(status, block_height=height,
                             last_valid_block_height=last_valid_block_height)
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
