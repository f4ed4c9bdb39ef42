"""The V3 commands as an operator runs them: create, upgrade, show, authorize, revoke, and
no secret (signature, UMK, agent key, sealed grant, MAC) in any output or log line."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import base58
from solders.keypair import Keypair

from security.agent_keys import open_agent_privkey
from security.execution import open_grant
from security.key_hierarchy import derive_subkeys, derive_umk, umk_message
from storage.database import Database
from tests.operator_cli.helpers import Cli, snapshot


def _sig(tmp: Path, owner: Keypair, name: str = "owner.sig") -> tuple[Path, bytes]:
    """A real owner signature of the UMK message, written as base58 text."""
    signature = owner.sign_message(umk_message(str(owner.pubkey())))
    path = tmp / name
    path.write_text(str(signature))
    return path, bytes(signature)


def _forms(secret: bytes) -> set[str]:
    return {secret.hex(), base58.b58encode(secret).decode(),
            base64.b64encode(secret).decode().rstrip("="),
            base64.urlsafe_b64encode(secret).decode().rstrip("="), json.dumps(list(secret))}


def test_v3_create_upgrade_authorize_revoke_and_show_leak_nothing(
        cli: Cli, db: Database, tmp_path: Path) -> None:
    owner = Keypair()
    sig_file, signature = _sig(tmp_path, owner)
    address = str(owner.pubkey())
    message = cli.ok("wallet", "umk-message", address)
    assert message["message"].encode() == umk_message(address)
    made = cli.ok("wallet", "create", "--owner", address, "--owner-signature-file",
                  str(sig_file), "--no-fund")
    row = db.fetchone("SELECT * FROM wallets WHERE address = %s", (address,))
    assert row["agent_private_key_encrypted"] is None  # no server-key copy of a V3 key
    assert made["key_path"] == "v3"

    old_owner = Keypair()  # a legacy wallet with a distinct owner, upgraded later
    old_sig, old_signature = _sig(tmp_path, old_owner, "old.sig")
    legacy = cli.ok("wallet", "create", "--owner", str(old_owner.pubkey()), "--no-fund")
    legacy_bot = cli.ok("bot", "create", "--wallet", legacy["wallet"], "--market", "SOL-PERP",
                        "--leverage", "2", "--max-position-usd", "100")["bot_id"]
    assert cli.ok("bot", "show", legacy_bot)["key_path"] == "legacy"
    listing = cli.ok("wallet", "show")
    assert listing["legacy_dependent"] == [legacy["wallet"]]
    assert {w["wallet"]: w["label"] for w in listing["wallets"]} == {
        address: "v3", legacy["wallet"]: "legacy"}
    refused = cli("bot", "authorize", legacy_bot, "--owner-signature-file", str(old_sig))
    assert refused.code == 1 and "wallet upgrade" in refused.err

    before = snapshot(db)
    wrong = cli("wallet", "upgrade", legacy["wallet"], "--owner-signature-file", str(sig_file))
    assert wrong.code == 1 and "does not verify" in wrong.err and snapshot(db) == before
    upgraded = cli.ok("wallet", "upgrade", legacy["wallet"], "--owner-signature-file",
                      str(old_sig))
    assert upgraded["changed"] and upgraded["bots_needing_grant"] == [legacy_bot]
    row = db.fetchone("SELECT * FROM wallets WHERE address = %s", (legacy["wallet"],))
    assert row["agent_private_key_encrypted"] is None
    subkeys = derive_subkeys(derive_umk(legacy["wallet"], old_signature))
    agent = open_agent_privkey(subkeys, row["agent_private_key_encrypted_v3"])
    assert str(Keypair.from_bytes(agent).pubkey()) == legacy["agent_public_key"]
    assert cli.ok("wallet", "show", legacy["wallet"])["depends_on_legacy_key_path"] is False

    granted = cli.ok("bot", "authorize", legacy_bot, "--owner-signature-file", str(old_sig),
                     "--hours", "48")
    stored = db.fetchone("SELECT umk_encrypted_for_bot AS e, execution_expires_at AS x,"
                         " execution_grant_mac AS m FROM trading_bots WHERE id = %s",
                         (legacy_bot,))
    opened = open_grant(cli.ring(), legacy["wallet"], legacy_bot, stored["e"])
    assert opened.expires_at == stored["x"]
    assert timedelta(hours=47) < opened.expires_at - datetime.now(UTC) <= timedelta(hours=48)
    assert granted["authorized"] and cli.ok("bot", "show", legacy_bot)["grant"]["state"] == \
        "active"
    too_long = cli("bot", "authorize", legacy_bot, "--owner-signature-file", str(old_sig),
                   "--hours", "721")
    assert too_long.code == 1
    revoked = cli.ok("bot", "revoke", legacy_bot)
    assert revoked["had_grant"]
    gone = db.fetchone("SELECT umk_encrypted_for_bot AS e, execution_grant_mac AS m,"
                       " execution_active AS a FROM trading_bots WHERE id = %s", (legacy_bot,))
    assert gone == {"e": None, "m": None, "a": False}

    forbidden = _forms(signature) | _forms(old_signature) | _forms(agent) | _forms(agent[:32])
    forbidden |= _forms(derive_umk(legacy["wallet"], old_signature).key)
    forbidden |= {stored["e"], stored["m"].split(".")[-1], row["agent_private_key_encrypted_v3"]}
    assert len(cli.runs) >= 12
    for run in cli.runs:
        for secret in forbidden:
            assert secret not in run.out and secret not in run.err, f"leaked by {run.args}"
