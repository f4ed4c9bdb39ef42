"""`wallet create` / `wallet fund` / `wallet init-orders` / `wallet upgrade` through the real
CLI: keys sealed, owner, faucet, refusals, and on a real venue the SignedMsgUserOrders account
and its rent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from solders.keypair import Keypair

from security.agent_keys import open_agent_privkey, open_agent_privkey_legacy
from security.key_hierarchy import derive_subkeys, derive_umk, umk_message
from storage.database import Database
from tests.operator_cli.conftest import Faucet
from tests.operator_cli.helpers import Cli, snapshot
from tests.security.helpers import wallet as fixed_wallet


def _keypair_file(tmp_path: Path, keypair: Keypair, name: str = "agent.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(list(bytes(keypair))))
    return path


def _stored(db: Database, address: str) -> dict:
    row = db.fetchone("SELECT * FROM wallets WHERE address = %s", (address,))
    assert row is not None
    return row


def test_create_stores_a_sealed_agent_and_funds_it_on_the_sandbox(
    cli: Cli, db: Database, faucet: Faucet
) -> None:
    out = cli.ok("wallet", "create")
    assert set(out) >= {"wallet", "owner_address", "agent_public_key", "legacy_key_id", "funded"}
    assert out["owner_address"] == out["agent_public_key"] == out["wallet"]
    assert out["owner_is_agent"] is True and out["legacy_key_id"] == "k1"
    assert faucet.paths == ["/sandbox/faucet"]
    assert faucet.bodies == [{"authority": out["agent_public_key"], "quote": 10000}]
    assert out["funded"]["quote_balance"] == 10_000_000_000
    row = _stored(db, out["wallet"])
    assert row["agent_public_key"] == out["agent_public_key"]
    assert row["agent_private_key_encrypted_v3"] is None
    envelope = row["agent_private_key_encrypted"]
    secret = open_agent_privkey_legacy(cli.ring(), out["wallet"], envelope)
    assert str(Keypair.from_bytes(secret).pubkey()) == out["agent_public_key"]


def test_human_output_is_one_line_naming_owner_and_agent(cli: Cli) -> None:
    result = cli("wallet", "create", "--fund", "250.5")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 1 and "created wallet" in lines[0] and "funded 250.5 USDC" in lines[0]


def test_fund_amount_is_sent_as_given(cli: Cli, faucet: Faucet) -> None:
    cli.ok("wallet", "create", "--fund", "250.5")
    assert faucet.bodies[-1]["quote"] == 250.5


def test_import_key_keeps_the_given_agent(cli: Cli, db: Database, tmp_path: Path) -> None:
    keypair = Keypair()
    out = cli.ok("wallet", "create", "--import-key", str(_keypair_file(tmp_path, keypair)),
                 "--no-fund")
    assert out["agent_public_key"] == str(keypair.pubkey()) and out["imported"] is True
    row = _stored(db, out["wallet"])
    assert open_agent_privkey_legacy(cli.ring(), out["wallet"],
                                     row["agent_private_key_encrypted"]) == bytes(keypair)


def test_owner_and_owner_signature_seal_the_v3_envelope(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    owner_kp, owner = fixed_wallet()
    signature = owner_kp.sign_message(umk_message(owner))
    sig_file = tmp_path / "sig.txt"
    sig_file.write_text(str(signature))
    agent = Keypair()
    out = cli.ok("wallet", "create", "--owner", owner, "--owner-signature-file", str(sig_file),
                 "--import-key", str(_keypair_file(tmp_path, agent)), "--no-fund")
    assert out["wallet"] == owner and out["agent_public_key"] == str(agent.pubkey())
    assert out["v3_sealed"] is True and out["owner_is_agent"] is False
    row = _stored(db, owner)
    subkeys = derive_subkeys(derive_umk(owner, bytes(signature)))
    assert open_agent_privkey(subkeys, row["agent_private_key_encrypted_v3"]) == bytes(agent)


def test_a_signature_by_someone_else_is_refused_and_nothing_is_written(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    _, owner = fixed_wallet()
    stranger = Keypair()
    sig_file = tmp_path / "sig.txt"
    sig_file.write_text(str(stranger.sign_message(umk_message(owner))))
    before = snapshot(db)
    result = cli("wallet", "create", "--owner", owner, "--owner-signature-file", str(sig_file),
                 "--no-fund", "--json")
    assert result.code == 1 and "does not verify" in result.json["error"]
    assert len(result.error_lines()) == 1
    assert snapshot(db) == before


def test_bad_inputs_are_refused_with_one_line_and_nothing_written(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    not_json = tmp_path / "bad.json"
    not_json.write_text("[1, 2, 3]")
    mismatched = list(bytes(Keypair()))[:32] + list(bytes(Keypair()))[32:]
    mismatch = tmp_path / "mismatch.json"
    mismatch.write_text(json.dumps(mismatched))
    cases = [
        ("--import-key", str(not_json)),
        ("--import-key", str(mismatch)),
        ("--import-key", str(tmp_path / "missing.json")),
        ("--owner", "not-an-address"),
        ("--fund", "-5"),
        ("--fund", "abc"),
    ]
    before = snapshot(db)
    for case in cases:
        result = cli("wallet", "create", *case, "--json")
        assert result.code == 1, case
        assert len(result.error_lines()) == 1, (case, result.err)
        assert set(result.json) == {"error"}, case
    assert snapshot(db) == before
    leaked = json.dumps(mismatched[:32])[1:-1]
    assert all(leaked not in r.out + r.err for r in cli.runs)


def test_the_same_owner_or_agent_twice_is_refused(cli: Cli, db: Database, tmp_path: Path) -> None:
    keypair = Keypair()
    path = _keypair_file(tmp_path, keypair)
    first = cli.ok("wallet", "create", "--import-key", str(path), "--no-fund")
    before = snapshot(db)
    again = cli("wallet", "create", "--import-key", str(path), "--no-fund")
    assert again.code == 1 and again.error_lines() == [
        f"quantumvault: wallet {first['wallet']} already exists"]
    other_owner = str(Keypair().pubkey())
    same_agent = cli("wallet", "create", "--import-key", str(path), "--owner", other_owner,
                     "--no-fund")
    assert same_agent.code == 1 and "already belongs" in same_agent.err
    assert snapshot(db) == before


def test_unreachable_sandbox_keeps_the_wallet_and_exits_4(cli: Cli, db: Database) -> None:
    result = cli("wallet", "create", "--json", env={"SANDBOX_URL": "http://127.0.0.1:9"})
    assert result.code == 4
    out = result.json
    assert out["funded"] is None and "not reachable" in out["faucet_error"]
    assert any("created but not funded" in line for line in result.error_lines())
    assert _stored(db, out["wallet"])["agent_public_key"] == out["agent_public_key"]


def test_wallet_fund_retries_the_faucet(cli: Cli, faucet: Faucet) -> None:
    out = cli.ok("wallet", "create", "--no-fund")
    assert faucet.bodies == []
    funded = cli.ok("wallet", "fund", out["wallet"], "--quote", "42")
    assert faucet.bodies == [{"authority": out["agent_public_key"], "quote": 42}]
    assert funded["funded"]["quote"] == "42"
    unknown = cli("wallet", "fund", str(Keypair().pubkey()))
    assert unknown.code == 1 and "unknown wallet" in unknown.err


def test_no_faucet_call_off_the_sandbox(cli: Cli, faucet: Faucet) -> None:
    out = cli.ok("wallet", "create", "--no-fund", env={"VENUE": "drift-devnet"})
    assert out["funded"] is None and faucet.bodies == []
    assert out["rent"]["total_lamports"] > out["rent"]["signed_msg_user_orders"] > 0


def test_an_unreachable_real_venue_keeps_the_wallet_and_exits_4(cli: Cli, db: Database,
                                                               faucet: Faucet) -> None:
    result = cli("wallet", "create", "--json",
                 env={"VENUE": "drift-devnet", "RPC_PRIMARY_URL": "http://127.0.0.1:9"})
    assert result.code == 4 and faucet.bodies == []
    out = result.json
    assert out["signed_msg_user_orders"] == "unknown" and out["funded"] is None
    assert any("wallet init-orders" in line for line in result.error_lines())
    assert _stored(db, out["wallet"])["agent_public_key"] == out["agent_public_key"]


@pytest.fixture
def venue() -> Iterator[Any]:
    """A real sandbox standing in for a real venue: VENUE=drift-devnet (the same program id)
    with its RPC at the sandbox, so `wallet create` takes the real-venue path."""
    server_module = pytest.importorskip("sandbox.server")
    sandbox = server_module.SandboxServer(port=0, slot_ms=20).start()
    yield sandbox
    sandbox.stop()


def _sol_only(venue: Any, authority: str, sol: float) -> None:
    """SOL for the authority, no User and no SignedMsgUserOrders (as on a real venue)."""
    answer = requests.post(f"{venue.url}/sandbox/faucet", timeout=5, json={
        "authority": authority, "sol": sol, "user": False,
        "signed_msg_user_orders": False}).json()
    assert answer["signed_msg_user_orders"] is None


def test_on_a_real_venue_a_funded_agent_gets_its_signed_msg_user_orders(
        cli: Cli, tmp_path: Path, venue: Any) -> None:
    keypair = Keypair()
    _sol_only(venue, str(keypair.pubkey()), 0.05)
    real = {"VENUE": "drift-devnet", "RPC_PRIMARY_URL": venue.url}
    out = cli.ok("wallet", "create", "--import-key", str(_keypair_file(tmp_path, keypair)),
                 env=real)
    assert out["signed_msg_user_orders"] == "created"
    assert keypair.pubkey() in venue.exchange.signed_msg
    report = out["signed_msg_user_orders_report"]
    assert report["balance_lamports"] == 50_000_000 and report["signature"]
    rent = out["rent"]
    assert rent["signed_msg_user_orders"] == (128 + 48 + 8 * 24) * 6960  # Solana's formula
    assert rent["total_lamports"] == (rent["signed_msg_user_orders"] + rent["per_sub_account"]
                                      + rent["user_stats"] + rent["fee_reserve"])
    again = cli.ok("wallet", "init-orders", out["wallet"], env=real)
    assert again["state"] == "exists"


def test_on_a_real_venue_a_new_agent_is_told_how_much_sol_it_needs(
        cli: Cli, venue: Any) -> None:
    real = {"VENUE": "drift-devnet", "RPC_PRIMARY_URL": venue.url}
    result = cli("wallet", "create", "--json", env=real)
    assert result.code == 0  # the wallet is created; its SOL is the operator's next step
    out = result.json
    assert out["signed_msg_user_orders"] == "needs_sol"
    total = out["rent"]["total_sol"]
    (line,) = result.error_lines()
    assert f"need {total} SOL" in line and f"wallet init-orders {out['wallet']}" in line
    refused = cli("wallet", "init-orders", out["wallet"], env=real)
    assert refused.code == 1 and "SOL more" in refused.err
    _sol_only(venue, out["agent_public_key"], 0.01)
    created = cli.ok("wallet", "init-orders", out["wallet"], env=real)
    assert created["state"] == "created"


def _transactions(venue: Any, authority: str) -> int:
    """Transactions the venue received from this authority."""
    stats = requests.get(f"{venue.url}/sandbox/stats", timeout=5).json()["by_authority"]
    return stats.get(authority, {}).get("transactions_received", 0)


def test_on_a_real_venue_wallet_upgrade_creates_signed_msg_user_orders_once(
        cli: Cli, tmp_path: Path, venue: Any) -> None:
    real = {"VENUE": "drift-devnet", "RPC_PRIMARY_URL": venue.url}
    owner, agent = Keypair(), Keypair()
    address = str(owner.pubkey())
    sig_file = tmp_path / "owner.sig"
    sig_file.write_text(str(owner.sign_message(umk_message(address))))
    cli.ok("wallet", "create", "--owner", address, "--no-fund",  # legacy, no venue step
           "--import-key", str(_keypair_file(tmp_path, agent)), env=real)
    upgrade = ("wallet", "upgrade", address, "--owner-signature-file", str(sig_file))

    poor = cli(*upgrade, "--json", env=real)  # upgraded; the agent cannot pay for the account yet
    assert poor.code == 0 and poor.json["changed"] is True
    assert poor.json["signed_msg_user_orders"] == "needs_sol"
    (line,) = poor.error_lines()
    assert f"need {poor.json['rent']['total_sol']} SOL" in line
    assert f"wallet init-orders {address} --owner-signature-file" in line

    _sol_only(venue, str(agent.pubkey()), 0.05)
    again = cli.ok(*upgrade, env=real)  # run again, it finishes the venue step
    assert again["changed"] is False and again["signed_msg_user_orders"] == "created"
    assert agent.pubkey() in venue.exchange.signed_msg
    assert _transactions(venue, str(agent.pubkey())) == 1

    kept = cli.ok(*upgrade, env=real)
    assert kept["signed_msg_user_orders"] == "exists"
    assert _transactions(venue, str(agent.pubkey())) == 1  # found and kept, not re-created


def test_wallet_upgrade_keeps_the_wallet_upgraded_when_the_venue_is_unreachable(
        cli: Cli, db: Database, tmp_path: Path) -> None:
    owner = Keypair()
    address = str(owner.pubkey())
    sig_file = tmp_path / "owner.sig"
    sig_file.write_text(str(owner.sign_message(umk_message(address))))
    cli.ok("wallet", "create", "--owner", address, "--no-fund")
    result = cli("wallet", "upgrade", address, "--owner-signature-file", str(sig_file), "--json",
                 env={"VENUE": "drift-devnet", "RPC_PRIMARY_URL": "http://127.0.0.1:9"})
    assert result.code == 4 and result.json["signed_msg_user_orders"] == "unknown"
    assert any("--owner-signature-file" in line for line in result.error_lines())
    row = _stored(db, address)
    assert row["agent_private_key_encrypted"] is None  # the key moved all the same
    assert row["agent_private_key_encrypted_v3"] is not None


def test_the_real_sandbox_faucet_funds_the_new_agent(cli: Cli) -> None:
    server_module = pytest.importorskip("sandbox.server")
    sandbox = server_module.SandboxServer(port=0, slot_ms=0).start()
    try:
        out = cli.ok("wallet", "create", "--fund", "1234", env={"SANDBOX_URL": sandbox.url})
        assert out["funded"]["user"] and out["funded"]["quote_balance"] == 1234 * 10**6
        users = [u for u in sandbox.exchange.users.values()
                 if str(u.authority) == out["agent_public_key"]]
        assert len(users) == 1 and users[0].quote_balance == 1234 * 10**6
    finally:
        sandbox.stop()
