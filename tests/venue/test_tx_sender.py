"""Sending and confirming against the sandbox over real HTTP: a 429 on sendTransaction sends the
same transaction again (it lands once) or reports it not sent; a lost answer leaves the verdict
to confirmation; every open transaction is confirmed by one status read a tick; a 429 while
confirming is no outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator

import gevent
import pytest
import requests
from solders.hash import Hash
from solders.keypair import Keypair

from sandbox.server import SandboxServer
from tests.daemon import sandbox_fixture
from venue.legacy_tx import BuiltTx, build_tx
from venue.rpc_client import RpcError, RpcTransportError, SignatureStatus, SolanaRpc, error_label
from venue.tx_sender import Confirmations, NotAccepted, broadcast, confirm
from venue.tx_status import TxState, TxVerdict

TICK_S = 0.05


sandbox = sandbox_fixture(seed=5, slot_ms=0)


@pytest.fixture
def rpc(sandbox: SandboxServer) -> Iterator[SolanaRpc]:
    """A client that gives up on 429s at once (the callers under test handle them)."""
    client = SolanaRpc(sandbox.rpc_url, label="primary", timeout_s=5, rate_limit_budget_s=0.0)
    yield client
    client.close()


def funded_tx(sandbox: SandboxServer, rpc: SolanaRpc) -> tuple[BuiltTx, int]:
    """A signed transaction of a funded payer, and its blockhash's last valid block height."""
    payer = Keypair()
    answer = requests.post(f"{sandbox.url}/sandbox/faucet", timeout=5,
                           json={"authority": str(payer.pubkey()), "quote": 1})
    assert answer.status_code == 200, answer.text
    blockhash, last_valid = rpc.get_latest_blockhash()
    return build_tx(payer, [], blockhash), last_valid


def stats(sandbox: SandboxServer) -> dict:
    return requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()


def limit_rpc(sandbox: SandboxServer, per_s: int) -> None:
    """The provider's rate limit, with its bucket spent: the next call is refused."""
    answer = requests.post(f"{sandbox.url}/sandbox/faults", json={"rpc_rps_limit": per_s},
                           timeout=5)
    assert answer.status_code == 200, answer.text
    while requests.post(sandbox.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                        timeout=5).status_code != 429:
        pass


def status_reader(rpc: SolanaRpc):
    def read(signatures: list[str]) -> tuple[int, list[SignatureStatus | None]]:
        return rpc.get_block_height(), rpc.get_signature_statuses(signatures)
    return read


def landed_once(sandbox: SandboxServer, built: BuiltTx) -> bool:
    payer = str(built.tx.message.account_keys[0])
    return stats(sandbox)["by_authority"][payer].get("transactions_landed") == 1


def test_a_send_refused_with_429_is_sent_again_and_lands_once(sandbox, rpc) -> None:
    built, last_valid = funded_tx(sandbox, rpc)
    limit_rpc(sandbox, 2)
    checks: list[None] = []
    broadcast(lambda: rpc.send_transaction(built.raw), time.monotonic() + 30,
              recover=lambda: checks.append(None))
    assert checks and stats(sandbox)["totals"]["rpc_rate_limited"] >= 1
    sandbox.step()
    assert confirm(rpc, built.signature, last_valid, 10).state is TxState.LANDED
    assert landed_once(sandbox, built)


def test_a_send_refused_until_its_deadline_is_reported_not_sent(sandbox, rpc) -> None:
    built, _ = funded_tx(sandbox, rpc)
    limit_rpc(sandbox, 1)
    with pytest.raises(NotAccepted) as refused:
        broadcast(lambda: rpc.send_transaction(built.raw), time.monotonic() + 0.3)
    assert error_label(refused.value) == "rpc_unreachable"  # transient: a retry may follow
    payer = str(built.tx.message.account_keys[0])
    assert "transactions_received" not in stats(sandbox)["by_authority"][payer]


def test_a_lost_answer_is_sent_again_and_left_to_confirmation(sandbox, rpc) -> None:
    built, last_valid = funded_tx(sandbox, rpc)
    answers: list[str] = []

    def attempt() -> None:
        rpc.send_transaction(built.raw)  # the node takes it...
        if not answers:
            answers.append("lost")
            raise RpcTransportError("primary", "sendTransaction", "timeout")  # ...unanswered

    # the second send is refused at preflight (already processed): that proves nothing
    # about the first, so the verdict is left to confirmation
    broadcast(attempt, time.monotonic() + 30)
    sandbox.step()
    assert confirm(rpc, built.signature, last_valid, 10).state is TxState.LANDED
    assert landed_once(sandbox, built)


def test_a_refusal_at_preflight_is_raised_with_its_reason(rpc) -> None:
    stale = build_tx(Keypair(), [], Hash.default())  # a blockhash the chain never had
    with pytest.raises(RpcError) as refused:
        broadcast(lambda: rpc.send_transaction(stale.raw), time.monotonic() + 30)
    assert error_label(refused.value) == "BlockhashNotFound"


def test_open_transactions_are_confirmed_by_one_status_read_a_tick(sandbox, rpc) -> None:
    sent = [funded_tx(sandbox, rpc) for _ in range(12)]
    never, never_valid = funded_tx(sandbox, rpc)  # signed, never sent: it expires
    for built, _ in sent:
        rpc.send_transaction(built.raw)
    before = stats(sandbox)["rpc_calls"].get("getSignatureStatuses", 0)
    confirmations = Confirmations(status_reader(rpc), TICK_S)
    until = time.monotonic() + 30
    waiters = [gevent.spawn(confirmations.wait, b.signature, lv, until) for b, lv in sent]
    sandbox.step()  # before the first tick: every one of them is confirmed in its read
    gevent.joinall(waiters, raise_error=True)
    assert [w.value for w in waiters] == [TxVerdict(TxState.LANDED)] * len(sent)
    assert stats(sandbox)["rpc_calls"]["getSignatureStatuses"] == before + 1
    expiring = gevent.spawn(confirmations.wait, never.signature, never_valid, until)
    sandbox.step(never_valid - sandbox.exchange.slot + 1)
    assert expiring.get(timeout=10) == TxVerdict(TxState.EXPIRED)


def test_a_transaction_with_no_verdict_by_its_deadline_is_pending(sandbox, rpc) -> None:
    built, last_valid = funded_tx(sandbox, rpc)  # never sent, blockhash still valid
    confirmations = Confirmations(status_reader(rpc), TICK_S)
    verdict = confirmations.wait(built.signature, last_valid, time.monotonic() + 3 * TICK_S)
    assert verdict == TxVerdict(TxState.PENDING)


def test_status_reads_refused_with_429_decide_nothing_and_polling_goes_on(sandbox, rpc) -> None:
    built, last_valid = funded_tx(sandbox, rpc)
    rpc.send_transaction(built.raw)
    sandbox.step()
    limit_rpc(sandbox, 2)  # each tick needs two calls: refused until the bucket refills
    confirmations = Confirmations(status_reader(rpc), TICK_S)
    verdict = confirmations.wait(built.signature, last_valid, time.monotonic() + 30)
    assert verdict == TxVerdict(TxState.LANDED)
    assert stats(sandbox)["totals"]["rpc_rate_limited"] >= 1


def test_confirm_polls_on_through_429s(sandbox, rpc) -> None:
    built, last_valid = funded_tx(sandbox, rpc)
    rpc.send_transaction(built.raw)
    sandbox.step()
    limit_rpc(sandbox, 2)
    assert confirm(rpc, built.signature, last_valid, 30).state is TxState.LANDED
    assert stats(sandbox)["totals"]["rpc_rate_limited"] >= 1
