"""Solana JSON-RPC and the on-chain (legacy) path: real Drift instructions via sendTransaction."""

from __future__ import annotations

import base64
import struct

from driftpy import addresses
from driftpy.constants.config import DRIFT_PROGRAM_ID
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    SYSTEM_PROGRAM,
    SYSVAR_RENT,
    TOKEN_PROGRAM,
    USDC_MINT,
    build_tx,
    coder,
    drift_ix,
    faucet,
    fetch_user,
    oracle_price,
    order_params,
    perp_base,
    place_and_take_ix,
    rpc,
    send_tx,
    state_key,
    user_key,
)


def _ata(owner: Pubkey) -> Pubkey:
    return Pubkey.find_program_address(
        [bytes(owner), bytes(TOKEN_PROGRAM), bytes(USDC_MINT)],
        Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"))[0]


def _stats_key(auth: Pubkey) -> Pubkey:
    return addresses.get_user_stats_account_public_key(DRIFT_PROGRAM_ID, auth)


def _vault() -> Pubkey:
    return addresses.get_spot_market_vault_public_key(DRIFT_PROGRAM_ID, 0)


def _onboarding_ixs(kp: Keypair, deposit: int) -> list[Instruction]:
    auth = kp.pubkey()
    return [
        set_compute_unit_limit(400_000),
        set_compute_unit_price(1_000),
        drift_ix("initialize_user_stats", {}, [
            AccountMeta(_stats_key(auth), False, True), AccountMeta(state_key(), False, True),
            AccountMeta(auth, True, False), AccountMeta(auth, True, True),
            AccountMeta(SYSVAR_RENT, False, False), AccountMeta(SYSTEM_PROGRAM, False, False)]),
        drift_ix("initialize_user", {"sub_account_id": 0, "name": list(b"bot".ljust(32))}, [
            AccountMeta(user_key(auth), False, True), AccountMeta(_stats_key(auth), False, True),
            AccountMeta(state_key(), False, True), AccountMeta(auth, True, False),
            AccountMeta(auth, True, True), AccountMeta(SYSVAR_RENT, False, False),
            AccountMeta(SYSTEM_PROGRAM, False, False)]),
        drift_ix("initialize_signed_msg_user_orders", {"num_orders": 8}, [
            AccountMeta(addresses.get_signed_msg_user_account_public_key(DRIFT_PROGRAM_ID, auth),
                        False, True),
            AccountMeta(auth, False, False), AccountMeta(auth, True, True),
            AccountMeta(SYSVAR_RENT, False, False), AccountMeta(SYSTEM_PROGRAM, False, False)]),
        drift_ix("deposit", {"market_index": 0, "amount": deposit, "reduce_only": False}, [
            AccountMeta(state_key(), False, False), AccountMeta(user_key(auth), False, True),
            AccountMeta(_stats_key(auth), False, True), AccountMeta(auth, True, False),
            AccountMeta(_vault(), False, True), AccountMeta(_ata(auth), False, True),
            AccountMeta(TOKEN_PROGRAM, False, False)]),
    ]


def _withdraw_ix(kp: Keypair, amount: int) -> Instruction:
    auth = kp.pubkey()
    return drift_ix("withdraw", {"market_index": 0, "amount": amount, "reduce_only": False}, [
        AccountMeta(state_key(), False, False), AccountMeta(user_key(auth), False, True),
        AccountMeta(_stats_key(auth), False, True), AccountMeta(auth, True, False),
        AccountMeta(_vault(), False, True),
        AccountMeta(addresses.get_drift_client_signer_public_key(DRIFT_PROGRAM_ID), False, False),
        AccountMeta(_ata(auth), False, True), AccountMeta(TOKEN_PROGRAM, False, False)])


def _token_balance(url: str, owner: Pubkey) -> int:
    return int(rpc(url, "getTokenAccountBalance", [str(_ata(owner))])["result"]["value"]["amount"])


def _status(url: str, sig: str) -> dict | None:
    return rpc(url, "getSignatureStatuses", [[sig]])["result"]["value"][0]


def test_onboarding_with_real_instructions(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, quote=0, wallet_quote=500, user=False)
    assert fetch_user(url, kp.pubkey()) is None
    out = send_tx(url, build_tx(url, kp, _onboarding_ixs(kp, 200_000_000)))
    assert "result" in out, out
    user = fetch_user(url, kp.pubkey())
    assert user.authority == kp.pubkey()
    assert user.spot_positions[0].scaled_balance == 200_000_000 * 1_000
    assert _token_balance(url, kp.pubkey()) == 300_000_000
    sm = rpc(url, "getAccountInfo", [str(addresses.get_signed_msg_user_account_public_key(
        DRIFT_PROGRAM_ID, kp.pubkey())), {"encoding": "base64"}])["result"]["value"]
    assert sm is not None and sm["owner"] == str(DRIFT_PROGRAM_ID)
    decoded = coder().accounts.decode(base64.b64decode(sm["data"][0]))
    assert decoded.authority_pubkey == kp.pubkey()
    assert len(decoded.signed_msg_order_data) == 8
    again = send_tx(url, build_tx(url, kp, _onboarding_ixs(kp, 1)))
    assert again["error"]["code"] == -32002  # accounts already in use


def test_place_and_take_lands_and_moves_position(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, quote=1_000)
    oracle = oracle_price(url)
    ixs = [set_compute_unit_price(5_000),
           place_and_take_ix(kp, order_params(direction="long", base=1_000_000_000))]
    out = send_tx(url, build_tx(url, kp, ixs))
    sig = out["result"]
    assert _status(url, sig)["confirmationStatus"] == "processed"
    sandbox.step()
    status = _status(url, sig)
    assert status["confirmationStatus"] == "confirmed" and status["err"] is None
    user = fetch_user(url, kp.pubkey())
    assert perp_base(user) == 1_000_000_000
    pos = next(p for p in user.perp_positions if p.market_index == 0)
    assert -pos.quote_entry_amount == oracle * 10_005 // 10_000  # 5 bps slippage
    sandbox.step(40)
    assert _status(url, sig)["confirmationStatus"] == "finalized"
    stats = sandbox.exchange.stats.snapshot()
    assert stats["by_instruction"]["place_and_take_perp_order"] == {"received": 1, "landed": 1}
    mine = stats["by_authority"][str(kp.pubkey())]
    assert (mine["transactions_received"], mine["transactions_landed"]) == (1, 1)
    assert mine["place_and_take_filled"] == 1

    close = place_and_take_ix(kp, order_params(direction="short", base=1_000_000_000,
                                               reduce_only=True))
    assert "result" in send_tx(url, build_tx(url, kp, [close]))
    assert perp_base(fetch_user(url, kp.pubkey())) == 0


def test_place_and_take_insufficient_collateral_fails_preflight(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, quote=5)
    ixs = [set_compute_unit_price(5_000),
           place_and_take_ix(kp, order_params(direction="long", base=10_000_000_000))]
    out = send_tx(url, build_tx(url, kp, ixs))
    err = out["error"]
    assert err["code"] == -32002
    assert err["message"] == ("Transaction simulation failed: Error processing Instruction 1: "
                              "custom program error: 0x1773")
    assert err["data"]["err"] == {"InstructionError": [1, {"Custom": 6003}]}
    assert perp_base(fetch_user(url, kp.pubkey())) == 0


def test_skip_preflight_failure_lands_with_error(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, quote=5)
    ix = place_and_take_ix(kp, order_params(direction="long", base=10_000_000_000))
    sig = send_tx(url, build_tx(url, kp, [ix]), skip_preflight=True)["result"]
    assert _status(url, sig)["err"] == {"InstructionError": [0, {"Custom": 6003}]}


def test_success_condition_full_fill_fails_without_liquidity(sandbox: SandboxServer) -> None:
    import requests

    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    requests.post(f"{url}/sandbox/liquidity", json={"market_index": 0, "mode": "none"},
                  timeout=5)
    ix = place_and_take_ix(kp, order_params(base=100_000_000), success_condition=2)
    out = send_tx(url, build_tx(url, kp, [ix]))
    assert out["error"]["data"]["err"] == {"InstructionError": [0, {"Custom": 6289}]}


def test_withdraw_and_spl_transfer(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp, friend = Keypair(), Keypair()
    faucet(url, kp, quote=100)
    faucet(url, friend, quote=0, user=False)
    assert "result" in send_tx(url, build_tx(url, kp, [_withdraw_ix(kp, 40_000_000)]))
    assert _token_balance(url, kp.pubkey()) == 40_000_000
    data = struct.pack("<BQ", 3, 15_000_000)
    transfer = Instruction(TOKEN_PROGRAM, data, [
        AccountMeta(_ata(kp.pubkey()), False, True),
        AccountMeta(_ata(friend.pubkey()), False, True),
        AccountMeta(kp.pubkey(), True, False)])
    assert "result" in send_tx(url, build_tx(url, kp, [transfer]))
    assert _token_balance(url, kp.pubkey()) == 25_000_000
    assert _token_balance(url, friend.pubkey()) == 15_000_000
    too_much = send_tx(url, build_tx(url, kp, [_withdraw_ix(kp, 61_000_000)]))
    assert too_much["error"]["data"]["err"] == {"InstructionError": [0, {"Custom": 6003}]}


def test_failed_instruction_rolls_back_the_whole_transaction(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp, quote=100)
    ixs = [_withdraw_ix(kp, 10_000_000), _withdraw_ix(kp, 1_000_000_000)]
    sig = send_tx(url, build_tx(url, kp, ixs), skip_preflight=True)["result"]
    assert _status(url, sig)["err"] == {"InstructionError": [1, {"Custom": 6003}]}
    assert _token_balance(url, kp.pubkey()) == 0


def test_bad_signature_stale_blockhash_unknown_program(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp, other = Keypair(), Keypair()
    faucet(url, kp)
    ix = place_and_take_ix(kp, order_params(base=100_000_000))
    blockhash = Hash.from_string(rpc(url, "getLatestBlockhash")["result"]["value"]["blockhash"])
    msg = MessageV0.try_compile(kp.pubkey(), [ix], [], blockhash)
    forged = VersionedTransaction.populate(msg, [other.sign_message(bytes(msg))])
    out = send_tx(url, base64.b64encode(bytes(forged)).decode())
    assert out["error"]["code"] == -32003

    sandbox.step(151)
    stale = send_tx(url, build_tx(url, kp, [ix], blockhash=blockhash))
    assert stale["error"]["message"] == "Transaction simulation failed: Blockhash not found"

    bogus = Instruction(Pubkey.new_unique(), b"\x01", [AccountMeta(kp.pubkey(), True, False)])
    out = send_tx(url, build_tx(url, kp, [bogus]))
    assert out["error"]["code"] == -32002
    assert out["error"]["data"]["err"] == "ProgramAccountNotFound"

    unknown_ix = Instruction(DRIFT_PROGRAM_ID, bytes(8), [AccountMeta(kp.pubkey(), True, False)])
    out = send_tx(url, build_tx(url, kp, [unknown_ix]))
    assert out["error"]["data"]["err"] == {"InstructionError": [0, {"Custom": 101}]}


def test_simulate_does_not_change_state(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    tx = build_tx(url, kp, [place_and_take_ix(kp, order_params(base=100_000_000))])
    sim = rpc(url, "simulateTransaction", [tx, {"encoding": "base64"}])["result"]
    assert sim["value"]["err"] is None
    assert any("PlaceAndTakePerpOrder" in line for line in sim["value"]["logs"])
    assert perp_base(fetch_user(url, kp.pubkey())) == 0


def test_rpc_shapes(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    assert rpc(url, "getSlot")["result"] == sandbox.exchange.slot
    out = rpc(url, "getMultipleAccounts", [[str(user_key(kp.pubkey())),
                                            str(Pubkey.new_unique())], {"encoding": "base64"}])
    value = out["result"]["value"]
    assert value[0]["owner"] == str(DRIFT_PROGRAM_ID) and value[1] is None
    assert out["result"]["context"]["slot"] == sandbox.exchange.slot
    assert rpc(url, "getBalance", [str(kp.pubkey())])["result"]["value"] > 0
    assert rpc(url, "noSuchMethod")["error"] == {"code": -32601, "message": "Method not found"}
    market = rpc(url, "getAccountInfo", [str(addresses.get_perp_market_public_key(
        DRIFT_PROGRAM_ID, 0)), {"encoding": "base64"}])["result"]["value"]
    decoded = coder().accounts.decode(base64.b64decode(market["data"][0]))
    assert decoded.market_index == 0
    assert decoded.amm.min_order_size == decoded.amm.order_step_size == 10_000_000
    assert decoded.amm.historical_oracle_data.last_oracle_price == oracle_price(url)
    assert decoded.margin_ratio_initial == 500


def test_garbage_transaction_is_invalid_params(sandbox: SandboxServer) -> None:
    url = sandbox.url
    out = rpc(url, "sendTransaction", [base64.b64encode(b"\x01garbage").decode(),
                                       {"encoding": "base64"}])
    assert out["error"]["code"] == -32602
    out = rpc(url, "sendTransaction", ["!!!", {"encoding": "base64"}])
    assert out["error"]["code"] == -32602
