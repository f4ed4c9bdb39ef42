"""Interpret a sent transaction's status without ever guessing: pending is not failed.

The rule: never act twice on an unknown outcome. For a legacy transaction
the outcome is only *known* when (a) getSignatureStatuses shows it landed (ok or error), or
(b) the cluster's block height has passed the blockhash's ``lastValidBlockHeight`` while the
signature is still unknown: from then on it can never land, so rebuilding is safe. Everything
else is PENDING and must be polled again, not re-sent with a new blockhash.

Read the block height *before* the signature status, from the same endpoint: a status read
that follows a height above ``lastValidBlockHeight`` and still finds nothing is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from venue.drift_program import program_error_name
from venue.rpc_client import SignatureStatus

_LEVEL = {"processed": 0, "confirmed": 1, "finalized": 2}


class TxState(StrEnum):
    """Where a sent transaction stands."""

    PENDING = "pending"
    LANDED = "landed"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class TxVerdict:
    """State plus, for FAILED, the Drift error name or a generic label (metric-safe)."""

    state: TxState
    error: str | None = None


def instruction_error_label(err: Any) -> str:
    """Metric-safe label for a transaction error, naming Drift program errors where known."""
    if isinstance(err, dict) and "InstructionError" in err:
        detail = err["InstructionError"]
        if isinstance(detail, list) and len(detail) == 2:
            inner = detail[1]
            if isinstance(inner, dict) and "Custom" in inner:
                name = program_error_name(int(inner["Custom"]))
                return name if name is not None else "custom_error"
            if isinstance(inner, str):
                return inner
    if isinstance(err, str):
        return err
    return "transaction_error"


def tx_verdict(status: SignatureStatus | None, *, block_height: int,
               last_valid_block_height: int, commitment: str = "confirmed") -> TxVerdict:
    """Decide LANDED / FAILED / EXPIRED / PENDING from one status read and the block height."""
    if status is not None:
        if status.err is not None:
            return TxVerdict(TxState.FAILED, instruction_error_label(status.err))
        reached = _LEVEL.get(status.confirmation_status or "processed", 0)
        if reached >= _LEVEL[commitment]:
            return TxVerdict(TxState.LANDED)
        return TxVerdict(TxState.PENDING)
    if block_height > last_valid_block_height:
        return TxVerdict(TxState.EXPIRED)
    return TxVerdict(TxState.PENDING)
