"""SignedMsgUserOrders: PDA as driftpy derives it, existence over RPC, init instruction."""

from __future__ import annotations

import base64
import json

import pytest
from driftpy.addresses import get_signed_msg_user_account_public_key
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import RENT

from tests.venue.driftpy_oracle import program
from tests.venue.http_fixtures import ScriptedServer
from venue.profiles import PROFILES
from venue.rpc_client import SolanaRpc
from venue.signed_msg_user_orders import (
    decode_signed_msg_user_orders,
    find_order_by_uuid,
    initialize_signed_msg_user_orders_ix,
    initialize_signed_msg_user_orders_tx,
    signed_msg_user_orders_address,
    signed_msg_user_orders_exists,
)

MAINNET = PROFILES["drift-mainnet"]


def test_address_is_driftpys_pda() -> None:
    authority = Pubkey.new_unique()
    expected = get_signed_msg_user_account_public_key(MAINNET.program_id, authority)
    assert signed_msg_user_orders_address(MAINNET, authority) == expected
    velocity = PROFILES["velocity"]
    assert signed_msg_user_orders_address(velocity, authority) != expected  # program id matters


@pytest.fixture
def node():
    s = ScriptedServer()
    s.accounts = {}

    def rpc(env):
        req = json.loads(env["record"].body)
        value = s.accounts.get(req["params"][0])
        result = {"context": {"slot": 1}, "value": value}
        return 200, json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result})

    s.routes[("POST", "/")] = rpc
    yield s
    s.stop()


def test_exists_checks_presence_and_owner(node) -> None:
    authority = Pubkey.new_unique()
    pda = str(signed_msg_user_orders_address(MAINNET, authority))
    rpc = SolanaRpc(node.url, timeout_s=2)
    assert not signed_msg_user_orders_exists(rpc, MAINNET, authority)
    account = {"data": [base64.b64encode(b"\x00" * 16).decode(), "base64"], "lamports": 1,
               "owner": str(Pubkey.new_unique()), "executable": False}
    node.accounts[pda] = account
    assert not signed_msg_user_orders_exists(rpc, MAINNET, authority)  # wrong owner
    node.accounts[pda] = {**account, "owner": str(MAINNET.program_id)}
    assert signed_msg_user_orders_exists(rpc, MAINNET, authority)


def test_initialize_instruction_decodes_with_driftpy() -> None:
    authority, payer = Pubkey.new_unique(), Pubkey.new_unique()
    ix = initialize_signed_msg_user_orders_ix(MAINNET, authority, 16, payer=payer)
    decoded = program().coder.instruction.parse(bytes(ix.data))
    assert decoded.name == "initialize_signed_msg_user_orders"
    assert decoded.data.num_orders == 16
    assert ix.program_id == MAINNET.program_id
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == [
        (signed_msg_user_orders_address(MAINNET, authority), False, True),
        (authority, False, False),
        (payer, True, True),
        (RENT, False, False),
        (SYSTEM_PROGRAM_ID, False, False),
    ]


@pytest.mark.parametrize("n", [0, 129])
def test_num_orders_range(n) -> None:
    with pytest.raises(ValueError):
        initialize_signed_msg_user_orders_ix(MAINNET, Pubkey.new_unique(), n)


def _account_bytes(authority: Pubkey, entries: list[tuple[bytes, int, int]], capacity: int):
    from anchorpy.program.common import NamedInstruction

    data = [dict(uuid=list(u), max_slot=s, order_id=o, padding=0) for u, s, o in entries]
    data += [dict(uuid=[0] * 8, max_slot=0, order_id=0, padding=0)] * (capacity - len(entries))
    account = dict(authority_pubkey=authority, padding=0, signed_msg_order_data=data)
    return program().coder.accounts.build(
        NamedInstruction(data=account, name="SignedMsgUserOrders"))


def test_decode_account_encoded_by_anchor_coder() -> None:
    authority = Pubkey.new_unique()
    entries = [(b"abcdefgh", 1_000, 17), (b"zyxwvuts", 2_000, 18)]
    raw = _account_bytes(authority, entries, capacity=8)
    owner, records = decode_signed_msg_user_orders(raw)
    assert owner == authority
    assert [(r.uuid, r.max_slot, r.order_id) for r in records] == entries
    assert find_order_by_uuid(raw, b"zyxwvuts").order_id == 18
    assert find_order_by_uuid(raw, b"nothere!") is None
    with pytest.raises(ValueError):
        decode_signed_msg_user_orders(b"\x00" * len(raw))
    with pytest.raises(ValueError):
        decode_signed_msg_user_orders(raw[:60])  # header says 8 entries, bytes say fewer


def test_initialize_tx_is_signed_by_authority() -> None:
    from solders.hash import Hash
    from solders.keypair import Keypair
    from solders.message import to_bytes_versioned
    from solders.transaction import VersionedTransaction

    kp = Keypair()
    built = initialize_signed_msg_user_orders_tx(MAINNET, kp, Hash.new_unique(), 8)
    tx = VersionedTransaction.from_bytes(built.raw)
    assert tx.signatures[0].verify(kp.pubkey(), to_bytes_versioned(tx.message))
    ix = tx.message.instructions[-1]
    assert program().coder.instruction.parse(bytes(ix.data)).data.num_orders == 8
