"""Legacy transactions: deserialize with solders, verify signatures, decode with driftpy's coder."""

from __future__ import annotations

import random
import struct
from types import MethodType, SimpleNamespace

import pytest
from driftpy.addresses import (
    get_drift_client_signer_public_key,
    get_perp_market_public_key,
    get_spot_market_public_key,
    get_spot_market_vault_public_key,
    get_state_public_key,
    get_user_account_public_key,
    get_user_stats_account_public_key,
)
from driftpy.constants.perp_markets import mainnet_perp_market_configs
from driftpy.constants.spot_markets import mainnet_spot_market_configs
from driftpy.decode.user import decode_user
from driftpy.drift_client import DriftClient
from driftpy.name import encode_name
from solders.compute_budget import ID as COMPUTE_BUDGET_ID
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import RENT
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import decode_transfer_checked, get_associated_token_address

from tests.venue.driftpy_oracle import program, user_account_bytes
from venue.auction import AuctionConfig
from venue.drift_types import from_order_params
from venue.legacy_tx import (
    ComputeBudget,
    initialize_user_ix,
    initialize_user_stats_ix,
    place_and_take_perp_order_tx,
    profit_share_tx,
    spl_transfer_tx,
    token_ix,
    withdraw_tx,
)
from venue.profiles import PROFILES
from venue.remaining_accounts import remaining_accounts
from venue.swift_order import LONG, SHORT, limit_order, market_order

MAINNET = PROFILES["drift-mainnet"]
PID = MAINNET.program_id


def _driftpy_remaining(user_accounts, writable_perp=(), writable_spot=()):
    """Run driftpy's own get_remaining_accounts on a stub fed with static market configs."""
    perp_cfg = {c.market_index: c for c in mainnet_perp_market_configs}
    spot_cfg = {c.market_index: c for c in mainnet_spot_market_configs}
    stub = SimpleNamespace(last_perp_market_seen_cache={}, last_spot_market_seen_cache={})
    stub.get_user = lambda: SimpleNamespace(
        get_user_account_and_slot=lambda: SimpleNamespace(slot=0))
    stub.get_perp_market_account = lambda i: SimpleNamespace(
        pubkey=get_perp_market_public_key(PID, i),
        amm=SimpleNamespace(oracle=perp_cfg[i].oracle, oracle_source=perp_cfg[i].oracle_source),
        quote_spot_market_index=0)
    stub.get_spot_market_account = lambda i: SimpleNamespace(
        pubkey=get_spot_market_public_key(PID, i), oracle=spot_cfg[i].oracle)
    for name in ("get_remaining_accounts", "get_remaining_accounts_for_users",
                 "add_perp_market_to_remaining_account_maps",
                 "add_spot_market_to_remaining_account_maps"):
        setattr(stub, name, MethodType(getattr(DriftClient, name), stub))
    return stub.get_remaining_accounts(user_accounts=user_accounts,
                                       writable_perp_market_indexes=list(writable_perp),
                                       writable_spot_market_indexes=list(writable_spot))


def _random_user(rng: random.Random, authority: Pubkey):
    perps = [dict(market_index=m, base=rng.choice([0, 10**9, -10**9]), quote=rng.choice([0, -5]),
                  open_orders=rng.choice([0, 0, 1]))
             for m in rng.sample(range(85), rng.randrange(0, 6))]
    spots = [dict(market_index=m, scaled_balance=rng.choice([0, 10**9]))
             for m in rng.sample(range(len(mainnet_spot_market_configs)), rng.randrange(0, 4))]
    return decode_user(user_account_bytes(authority, perps=perps, spots=spots))


def test_remaining_accounts_match_driftpy() -> None:
    rng = random.Random(11)
    for _ in range(60):
        user = _random_user(rng, Pubkey.new_unique())
        market = rng.randrange(85)
        ours = remaining_accounts(MAINNET, [user], writable_perp=[market])
        assert ours == _driftpy_remaining([user], writable_perp=[market])
        spot = rng.randrange(len(mainnet_spot_market_configs))
        assert remaining_accounts(MAINNET, [user], writable_spot=[spot]) == _driftpy_remaining(
            [user], writable_spot=[spot])


def _accounts_of(tx: VersionedTransaction, ix_index: int) -> list[Pubkey]:
    keys = tx.message.account_keys
    return [keys[i] for i in tx.message.instructions[ix_index].accounts]


def _check_signed(tx_bytes: bytes, *signers: Keypair) -> VersionedTransaction:
    tx = VersionedTransaction.from_bytes(tx_bytes)
    data = to_bytes_versioned(tx.message)
    assert len(tx.signatures) == len(signers)
    for sig, kp in zip(tx.signatures, signers, strict=True):
        assert sig.verify(kp.pubkey(), data)
    assert tx.message.account_keys[0] == signers[0].pubkey()  # fee payer
    return tx


def _check_budget(tx: VersionedTransaction, budget: ComputeBudget) -> None:
    keys = tx.message.account_keys
    cb = [ix for ix in tx.message.instructions if keys[ix.program_id_index] == COMPUTE_BUDGET_ID]
    assert [bytes(ix.data) for ix in cb] == [
        b"\x02" + struct.pack("<I", budget.unit_limit),
        b"\x03" + struct.pack("<Q", budget.unit_price_microlamports)]


def _orders(rng: random.Random):
    for _ in range(20):
        direction = rng.choice([LONG, SHORT])
        market = rng.randrange(85)
        base = rng.randrange(1, 10**12)
        if rng.random() < 0.5:
            yield market_order(direction=direction, base_asset_amount=base, market_index=market,
                               oracle_price=rng.randrange(10**3, 10**11),
                               auction=AuctionConfig(), reduce_only=rng.random() < 0.5)
        else:
            yield limit_order(direction=direction, base_asset_amount=base, market_index=market,
                              price=rng.randrange(1, 10**11), reduce_only=rng.random() < 0.5)


def test_place_and_take_tx_round_trips_through_driftpy_coder() -> None:
    rng = random.Random(1)
    kp = Keypair()
    budget = ComputeBudget(unit_limit=350_000, unit_price_microlamports=12_345)
    for order in _orders(rng):
        user = _random_user(rng, kp.pubkey())
        blockhash = Hash.new_unique()
        built = place_and_take_perp_order_tx(MAINNET, kp, order, user, blockhash, budget=budget)
        tx = _check_signed(built.raw, kp)
        assert str(tx.signatures[0]) == built.signature
        assert tx.message.recent_blockhash == blockhash
        _check_budget(tx, budget)
        drift_ix = tx.message.instructions[2]
        assert tx.message.account_keys[drift_ix.program_id_index] == PID
        decoded = program().coder.instruction.parse(bytes(drift_ix.data))
        assert decoded.name == "place_and_take_perp_order"
        assert from_order_params(decoded.data.params) == order
        assert decoded.data.success_condition is None
        accounts = _accounts_of(tx, 2)
        assert accounts[:4] == [get_state_public_key(PID),
                                get_user_account_public_key(PID, kp.pubkey(), 0),
                                get_user_stats_account_public_key(PID, kp.pubkey()),
                                kp.pubkey()]
        expected = _driftpy_remaining([user], writable_perp=[order.market_index])
        assert accounts[4:] == [m.pubkey for m in expected]
        for meta in expected:  # writability survives message compilation
            idx = list(tx.message.account_keys).index(meta.pubkey)
            assert tx.message.is_maybe_writable(idx) == meta.is_writable


def test_place_and_take_by_delegate_uses_owner_pdas() -> None:
    owner, delegate = Pubkey.new_unique(), Keypair()
    order = limit_order(direction=SHORT, base_asset_amount=10**9, market_index=1, price=10**6)
    built = place_and_take_perp_order_tx(MAINNET, delegate, order, None, Hash.new_unique(),
                                         authority=owner, sub_account_id=2)
    tx = _check_signed(built.raw, delegate)
    accounts = _accounts_of(tx, 2)
    assert accounts[1] == get_user_account_public_key(PID, owner, 2)
    assert accounts[2] == get_user_stats_account_public_key(PID, owner)
    assert accounts[3] == delegate.pubkey()


def test_unknown_market_is_refused() -> None:
    order = limit_order(direction=LONG, base_asset_amount=1, market_index=999, price=1)
    with pytest.raises(ValueError):
        place_and_take_perp_order_tx(MAINNET, Keypair(), order, None, Hash.new_unique())


def test_withdraw_tx() -> None:
    kp, dest = Keypair(), Pubkey.new_unique()
    user = decode_user(user_account_bytes(kp.pubkey(), spots=[dict(scaled_balance=10**9)],
                                          perps=[dict(market_index=0, base=10**9, quote=-1)]))
    built = withdraw_tx(MAINNET, kp, 25_000_000, user, Hash.new_unique(), destination_owner=dest,
                        sub_account_id=1)
    tx = _check_signed(built.raw, kp)
    _check_budget(tx, ComputeBudget())
    ata = get_associated_token_address(dest, MAINNET.quote_mint)
    assert _accounts_of(tx, 2)[1] == ata  # idempotent ATA creation for the destination
    decoded = program().coder.instruction.parse(bytes(tx.message.instructions[3].data))
    assert decoded.name == "withdraw"
    assert (decoded.data.market_index, decoded.data.amount, decoded.data.reduce_only) == (
        0, 25_000_000, True)
    accounts = _accounts_of(tx, 3)
    assert accounts[:8] == [
        get_state_public_key(PID), get_user_account_public_key(PID, kp.pubkey(), 1),
        get_user_stats_account_public_key(PID, kp.pubkey()), kp.pubkey(),
        get_spot_market_vault_public_key(PID, 0), get_drift_client_signer_public_key(PID),
        ata, TOKEN_PROGRAM_ID]
    assert accounts[8:] == [m.pubkey for m in _driftpy_remaining([user], writable_spot=[0])]


def test_deposit_token_ix() -> None:
    authority, source = Pubkey.new_unique(), Pubkey.new_unique()
    ix = token_ix("deposit", MAINNET, authority, 7_000_000, source, None, reduce_only=False)
    decoded = program().coder.instruction.parse(bytes(ix.data))
    assert decoded.name == "deposit"
    assert (decoded.data.market_index, decoded.data.amount, decoded.data.reduce_only) == (
        0, 7_000_000, False)
    assert [m.pubkey for m in ix.accounts] == [
        get_state_public_key(PID), get_user_account_public_key(PID, authority, 0),
        get_user_stats_account_public_key(PID, authority), authority,
        get_spot_market_vault_public_key(PID, 0), source, TOKEN_PROGRAM_ID,
        *[m.pubkey for m in _driftpy_remaining([], writable_spot=[0])]]


def test_initialize_user_and_stats_ix() -> None:
    authority = Pubkey.new_unique()
    stats = initialize_user_stats_ix(MAINNET, authority)
    assert program().coder.instruction.parse(bytes(stats.data)).name == "initialize_user_stats"
    assert [m.pubkey for m in stats.accounts] == [
        get_user_stats_account_public_key(PID, authority), get_state_public_key(PID), authority,
        authority, RENT, SYSTEM_PROGRAM_ID]
    ix = initialize_user_ix(MAINNET, authority, sub_account_id=2, name="bot 7")
    decoded = program().coder.instruction.parse(bytes(ix.data))
    assert decoded.name == "initialize_user"
    assert decoded.data.sub_account_id == 2
    assert list(decoded.data.name) == encode_name("bot 7")
    assert ix.accounts[0].pubkey == get_user_account_public_key(PID, authority, 2)
    assert [m.is_signer for m in ix.accounts] == [False, False, False, True, True, False, False]


def test_spl_transfer_tx() -> None:
    owner, recipient = Keypair(), Pubkey.new_unique()
    mint = MAINNET.quote_mint
    built = spl_transfer_tx(owner, mint, 6, 1_234_567, recipient, Hash.new_unique())
    tx = _check_signed(built.raw, owner)
    from solders.instruction import AccountMeta, Instruction

    m = tx.message
    raw_ix = m.instructions[3]
    ix = Instruction(m.account_keys[raw_ix.program_id_index], bytes(raw_ix.data),
                     [AccountMeta(m.account_keys[i], m.is_signer(i), m.is_maybe_writable(i))
                      for i in raw_ix.accounts])
    params = decode_transfer_checked(ix)
    assert (params.amount, params.decimals, params.mint, params.owner) == (
        1_234_567, 6, mint, owner.pubkey())
    assert params.source == get_associated_token_address(owner.pubkey(), mint)
    assert params.dest == get_associated_token_address(recipient, mint)


def test_profit_share_tx_withdraws_and_pays_atomically() -> None:
    from solders.instruction import AccountMeta, Instruction

    kp, recipient = Keypair(), Pubkey.new_unique()
    built = profit_share_tx(MAINNET, kp, 4_200_000, None, recipient, Hash.new_unique())
    tx = _check_signed(built.raw, kp)
    m = tx.message
    names = []
    for raw_ix in m.instructions[2:]:
        program_id = m.account_keys[raw_ix.program_id_index]
        if program_id == PID:
            names.append(program().coder.instruction.parse(bytes(raw_ix.data)).name)
        elif program_id == TOKEN_PROGRAM_ID:
            ix = Instruction(program_id, bytes(raw_ix.data),
                             [AccountMeta(m.account_keys[i], m.is_signer(i),
                                          m.is_maybe_writable(i)) for i in raw_ix.accounts])
            params = decode_transfer_checked(ix)
            assert (params.amount, params.decimals) == (4_200_000, 6)
            assert params.source == get_associated_token_address(kp.pubkey(), MAINNET.quote_mint)
            assert params.dest == get_associated_token_address(recipient, MAINNET.quote_mint)
            names.append("transfer_checked")
        else:
            names.append("create_ata")
    assert names == ["create_ata", "withdraw", "create_ata", "transfer_checked"]
