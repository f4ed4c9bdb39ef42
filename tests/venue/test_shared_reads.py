"""Reads shared by concurrent callers, against the sandbox over real HTTP: one blockhash read for
orders sent together, account asks merged into getMultipleAccounts, statuses 256 per call."""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest
import requests
from driftpy.addresses import get_perp_market_public_key, get_user_account_public_key
from gevent.event import Event
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from sandbox.server import SandboxServer
from tests.daemon import sandbox_fixture
from venue.positions import read_user
from venue.profiles import PROFILES
from venue.rpc_client import RpcTransportError, SolanaRpc
from venue.shared_reads import AccountBatcher, AccountsRead, SharedRead

PID = PROFILES["drift-mainnet"].program_id  # the sandbox serves the mainnet program id


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


sandbox = sandbox_fixture(seed=3, slot_ms=0)


@pytest.fixture
def rpc(sandbox: SandboxServer) -> Iterator[SolanaRpc]:
    client = SolanaRpc(sandbox.rpc_url, label="primary", timeout_s=5)
    yield client
    client.close()


def calls(sandbox: SandboxServer, method: str) -> int:
    answer = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()
    return int(answer["rpc_calls"].get(method, 0))


def funded_user(sandbox: SandboxServer) -> Pubkey:
    authority = Keypair().pubkey()
    answer = requests.post(f"{sandbox.url}/sandbox/faucet", timeout=5,
                           json={"authority": str(authority), "quote": 100})
    assert answer.status_code == 200, answer.text
    return authority


def test_asks_made_together_share_one_blockhash_read(sandbox, rpc) -> None:
    clock = FakeClock()
    shared = SharedRead(rpc.get_latest_blockhash, max_age_s=0.4, clock=clock)
    asks = [gevent.spawn(shared.get) for _ in range(20)]
    gevent.joinall(asks, raise_error=True)
    assert len({ask.value for ask in asks}) == 1
    assert calls(sandbox, "getLatestBlockhash") == 1
    sandbox.step()
    clock.now += 0.3  # within the slot it was read in: the same blockhash
    assert shared.get() == asks[0].value and calls(sandbox, "getLatestBlockhash") == 1
    clock.now += 0.2
    assert shared.get() != asks[0].value and calls(sandbox, "getLatestBlockhash") == 2


def test_account_asks_made_together_are_read_in_one_call(sandbox, rpc) -> None:
    market = get_perp_market_public_key(PID, 0)
    authorities = [funded_user(sandbox) for _ in range(30)]
    batcher = AccountBatcher(rpc.get_multiple_accounts)
    asks = [gevent.spawn(batcher.get, [get_user_account_public_key(PID, a, 0), market])
            for a in authorities]
    gevent.joinall(asks, raise_error=True)
    assert calls(sandbox, "getMultipleAccounts") == 1
    for authority, ask in zip(authorities, asks, strict=True):
        _slot, (user, market_account) = ask.value
        assert user is not None and read_user(user.data).authority == authority
        assert market_account is not None


def test_an_ask_made_while_a_read_is_in_flight_joins_the_next_read(sandbox, rpc) -> None:
    """Never answered from a read sent before the ask: the 29 asks made while the first read
    is held go, together, into a second read."""
    started, release = Event(), Event()

    def held_read(keys: list[Pubkey]) -> AccountsRead:
        started.set()
        assert release.wait(timeout=10)
        return rpc.get_multiple_accounts(keys)

    batcher = AccountBatcher(held_read)
    keys = [get_user_account_public_key(PID, funded_user(sandbox), 0) for _ in range(30)]
    first = gevent.spawn(batcher.get, keys[:1])
    assert started.wait(timeout=10)
    rest = [gevent.spawn(batcher.get, [key]) for key in keys[1:]]
    gevent.idle()  # every later ask is queued before the held read returns
    release.set()
    gevent.joinall([first, *rest], raise_error=True)
    assert calls(sandbox, "getMultipleAccounts") == 2
    assert all(ask.value[1][0] is not None for ask in [first, *rest])


def test_a_failed_batch_fails_its_asks_and_the_next_ask_reads_again(sandbox, rpc) -> None:
    batcher = AccountBatcher(rpc.get_multiple_accounts)
    key = get_user_account_public_key(PID, funded_user(sandbox), 0)
    answer = requests.post(f"{sandbox.url}/sandbox/faults", json={"rpc_primary_down": True},
                           timeout=5)
    assert answer.status_code == 200, answer.text
    asks = [gevent.spawn(batcher.get, [key]) for _ in range(3)]
    gevent.joinall(asks)
    assert all(isinstance(ask.exception, RpcTransportError) for ask in asks)
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)
    _slot, (user,) = batcher.get([key])
    assert user is not None


def test_signature_statuses_are_read_256_per_call(sandbox, rpc) -> None:
    signatures = [str(Keypair().sign_message(bytes([i % 256, i // 256]))) for i in range(300)]
    assert rpc.get_signature_statuses(signatures) == [None] * 300
    assert calls(sandbox, "getSignatureStatuses") == 2
