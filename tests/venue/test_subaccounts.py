"""A bot's own sub-account on the sandbox: created in the program's order, funded by
transferDeposit (or deposit for sub-account 0), read back with driftpy's decoders."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
from driftpy.addresses import get_user_account_public_key, get_user_stats_account_public_key
from driftpy.decode.user import decode_user
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair

from sandbox.server import SandboxServer
from tests.daemon import sandbox_fixture
from venue.legacy_tx import build_tx, initialize_user_ix, transfer_deposit_ix
from venue.profiles import VenueProfile, load_profile
from venue.rpc_client import RpcError, SolanaRpc, error_label
from venue.subaccounts import (
    SubAccountError,
    plan_sub_account,
    provision,
    read_sub_account,
    sub_accounts_created,
)

USDC = 1_000_000


sandbox = sandbox_fixture(seed=5, slot_ms=20)


@pytest.fixture
def venue(sandbox: SandboxServer) -> Iterator[tuple[VenueProfile, SolanaRpc]]:
    profile = load_profile({}, sandbox_url=sandbox.url)
    rpc = SolanaRpc(profile.rpc_primary_url, label="primary")
    yield profile, rpc
    rpc.close()


def faucet(sandbox: SandboxServer, kp: Keypair, **body: object) -> None:
    answer = requests.post(f"{sandbox.url}/sandbox/faucet", timeout=5,
                           json={"authority": str(kp.pubkey()), **body})
    assert answer.status_code == 200, answer.text


def quote_of(sandbox: SandboxServer, kp: Keypair, sub_account_id: int) -> int:
    user = requests.get(f"{sandbox.url}/sandbox/user", timeout=5, params={
        "authority": str(kp.pubkey()), "sub_account_id": sub_account_id}).json()
    return int(user["quote_balance"])


def decoded_user(rpc: SolanaRpc, profile: VenueProfile, kp: Keypair, sub_account_id: int):
    raw = rpc.call("getAccountInfo", [str(get_user_account_public_key(
        profile.program_id, kp.pubkey(), sub_account_id)), {"encoding": "base64"}])["value"]
    return decode_user(base64.b64decode(raw["data"][0]))


def send_raw(rpc: SolanaRpc, kp: Keypair, ix) -> str:
    blockhash, _ = rpc.get_latest_blockhash()
    try:
        rpc.send_transaction(build_tx(kp, [ix], blockhash).raw)
    except RpcError as exc:
        return error_label(exc)
    return "sent"


def test_next_sub_account_is_created_and_funded_from_sub_account_0(sandbox, venue) -> None:
    profile, rpc = venue
    kp = Keypair()
    faucet(sandbox, kp, quote=1000)
    plan = plan_sub_account(rpc, profile, kp.pubkey(), 1)
    assert (plan.sub_account_id, plan.create, plan.user_stats_missing) == (1, (1,), False)
    done = provision(rpc, profile, kp, plan, 300 * USDC)
    assert (done.created, done.funded, done.method) == ((1,), 300 * USDC, "transfer_deposit")
    assert quote_of(sandbox, kp, 1) == 300 * USDC and quote_of(sandbox, kp, 0) == 700 * USDC
    user = decoded_user(rpc, profile, kp, 1)
    assert user.sub_account_id == 1 and user.authority == kp.pubkey()
    assert user.spot_positions[0].scaled_balance == 300 * USDC * 1_000
    assert sub_accounts_created(rpc, profile, kp.pubkey()) == 2

    again = plan_sub_account(rpc, profile, kp.pubkey(), 1)  # a retry adopts, funds no twice
    assert again.exists and again.quote_balance == 300 * USDC
    assert provision(rpc, profile, kp, again, 300 * USDC).signatures == ()
    topped = provision(rpc, profile, kp, again, 350 * USDC)
    assert topped.funded == 50 * USDC and quote_of(sandbox, kp, 1) == 350 * USDC


def test_ids_are_created_only_in_order(sandbox, venue) -> None:
    profile, rpc = venue
    kp = Keypair()
    faucet(sandbox, kp, quote=100)
    assert send_raw(rpc, kp, initialize_user_ix(profile, kp.pubkey(), 2)) \
        == "InvalidUserSubAccountId"
    plan = plan_sub_account(rpc, profile, kp.pubkey(), 3)  # 1 and 2 are created on the way
    assert plan.create == (1, 2, 3)
    provision(rpc, profile, kp, plan, 10 * USDC)
    assert [read_sub_account(rpc, profile, kp.pubkey(), i) is not None for i in range(5)] \
        == [True, True, True, True, False]
    assert quote_of(sandbox, kp, 3) == 10 * USDC and quote_of(sandbox, kp, 2) == 0
    # an id below the counter that does not exist (deleted) can never come back: the next does
    gone = get_user_account_public_key(profile.program_id, kp.pubkey(), 2)
    with sandbox.exchange.lock:
        del sandbox.exchange.users[gone]
    assert plan_sub_account(rpc, profile, kp.pubkey(), 2).sub_account_id == 4


def test_transfers_are_atomic_and_checked(sandbox, venue) -> None:
    profile, rpc = venue
    kp = Keypair()
    faucet(sandbox, kp, quote=100)
    plan = plan_sub_account(rpc, profile, kp.pubkey(), 1)
    with pytest.raises(SubAccountError, match="InsufficientCollateral"):
        provision(rpc, profile, kp, plan, 150 * USDC)
    assert read_sub_account(rpc, profile, kp.pubkey(), 1) is None  # the init rolled back too
    assert quote_of(sandbox, kp, 0) == 100 * USDC
    provision(rpc, profile, kp, plan, 0)
    assert send_raw(rpc, kp, transfer_deposit_ix(profile, kp.pubkey(), USDC, 1, 1)) \
        == "CantTransferBetweenSameUserAccount"
    other = Keypair()
    faucet(sandbox, other, quote=10)
    ix = transfer_deposit_ix(profile, other.pubkey(), USDC, 0, 1)
    victim = get_user_account_public_key(profile.program_id, kp.pubkey(), 1)
    metas = [AccountMeta(victim, m.is_signer, m.is_writable) if i == 1 else m
             for i, m in enumerate(ix.accounts)]
    stranger = Instruction(ix.program_id, bytes(ix.data), metas)
    assert send_raw(rpc, other, stranger) == "rpc_error_-32002"  # only its own sub-accounts
    assert quote_of(sandbox, kp, 1) == 0


def test_a_fresh_authority_gets_user_stats_and_a_deposit(sandbox, venue) -> None:
    profile, rpc = venue
    kp = Keypair()
    faucet(sandbox, kp, user=False, wallet_quote=500)
    plan = plan_sub_account(rpc, profile, kp.pubkey(), 0)
    assert plan.user_stats_missing and plan.create == (0,)
    done = provision(rpc, profile, kp, plan, 200 * USDC)
    assert done.method == "deposit" and quote_of(sandbox, kp, 0) == 200 * USDC
    stats = rpc.get_account_info(get_user_stats_account_public_key(profile.program_id,
                                                                   kp.pubkey()))[1]
    assert stats is not None and sub_accounts_created(rpc, profile, kp.pubkey()) == 1


def test_an_existing_sub_account_with_a_position_is_not_taken_over(sandbox, venue) -> None:
    profile, rpc = venue
    kp = Keypair()
    faucet(sandbox, kp, quote=100)
    provision(rpc, profile, kp, plan_sub_account(rpc, profile, kp.pubkey(), 1), 0)
    ex = sandbox.exchange
    with ex.lock:
        user = ex.users[get_user_account_public_key(profile.program_id, kp.pubkey(), 1)]
        user.position(0).base_asset_amount = 10**8
        user.touch(ex.slot)
    with pytest.raises(SubAccountError, match="position or open orders"):
        plan_sub_account(rpc, profile, kp.pubkey(), 1)
