"""Transaction verdicts: only a landed status or a passed lastValidBlockHeight is final."""

from __future__ import annotations

import pytest

from venue.rpc_client import SignatureStatus
from venue.tx_status import TxState, instruction_error_label, tx_verdict


def S(status: str | None, err=None) -> SignatureStatus:
    return SignatureStatus(slot=1, confirmations=None, err=err, confirmation_status=status)


@pytest.mark.parametrize(("status", "height", "state", "error"), [
    (None, 100, TxState.PENDING, None),  # unknown but blockhash still valid: keep polling
    (None, 150, TxState.PENDING, None),  # exactly at last valid height: still valid
    (None, 151, TxState.EXPIRED, None),  # can never land now: safe to rebuild
    (S("processed"), 151, TxState.PENDING, None),
    (S("confirmed"), 10, TxState.LANDED, None),
    (S("finalized"), 10, TxState.LANDED, None),
    (S("confirmed", {"InstructionError": [2, {"Custom": 6003}]}), 10, TxState.FAILED,
     "InsufficientCollateral"),
    (S("processed", {"InstructionError": [0, {"Custom": 1}]}), 10, TxState.FAILED,
     "custom_error"),
    (S("confirmed", "AccountInUse"), 10, TxState.FAILED, "AccountInUse"),
])
def test_verdicts(status, height, state, error) -> None:
    v = tx_verdict(status, block_height=height, last_valid_block_height=150)
    assert (v.state, v.error) == (state, error)


def test_finalized_commitment_waits_for_finalized() -> None:
    v = tx_verdict(S("confirmed"), block_height=1, last_valid_block_height=9,
                   commitment="finalized")
    assert v.state is TxState.PENDING


def test_error_labels() -> None:
    assert instruction_error_label({"InstructionError": [0, "InvalidAccountData"]}) == (
        "InvalidAccountData")
    assert instruction_error_label({"weird": 1}) == "transaction_error"
