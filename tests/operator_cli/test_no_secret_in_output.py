"""Every command's output and log lines, searched for every secret the scenario knows."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import base58
from solders.keypair import Keypair

from security.key_hierarchy import umk_message
from storage.database import Database
from tests.operator_cli.helpers import Cli, write_key
from tests.security.helpers import wallet as fixed_wallet


def _forms(secret: bytes) -> set[str]:
    """Text forms a leaked key would take."""
    return {secret.hex(), base58.b58encode(secret).decode(),
            base64.b64encode(secret).decode().rstrip("="),
            base64.urlsafe_b64encode(secret).decode().rstrip("="),
            json.dumps(list(secret)), ", ".join(str(b) for b in secret)}


def test_no_command_prints_or_logs_a_secret_except_the_one_time_webhook_secret(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    owner_kp, owner = fixed_wallet()
    signature = bytes(owner_kp.sign_message(umk_message(owner)))
    sig_file = tmp_path / "sig.hex"
    sig_file.write_text(signature.hex())
    agent = Keypair()
    key_file = tmp_path / "agent.json"
    key_file.write_text(json.dumps(list(bytes(agent))))
    cli.ok("wallet", "create", "--owner", owner, "--owner-signature-file", str(sig_file),
           "--import-key", str(key_file))
    follower = cli.ok("wallet", "create")["wallet"]
    created = cli("bot", "create", "--wallet", owner, "--market", "SOL-PERP", "--leverage", "3",
                  "--max-position-usd", "100")
    bot_id = created.out.split()[2]
    rotated = cli.ok("bot", "rotate-secret", bot_id)
    webhook_secrets = {created.out.split()[-1], rotated["webhook_secret"]}
    assert all(s.startswith("qvwh_") for s in webhook_secrets)
    cli.ok("bot", "publish", bot_id, "--profit-share-percent", "5")
    cli.ok("bot", "subscribe", "--wallet", follower, "--to", bot_id, "--capital-usd", "10")
    cli("bot", "list")
    cli("bot", "show", bot_id)
    cli.ok("bot", "list")
    cli.ok("bot", "show", bot_id)
    cli("estop", "set", "--wallet", owner, "--flatten", "--reason", "drill")
    cli("estop", "clear", "--wallet", owner)
    cli("wallet", "create", "--import-key", str(key_file), "--no-fund")  # refused: duplicate
    new_key = write_key(tmp_path / "k2.key")
    both = {"SERVER_KEYS": f"{cli.env['SERVER_KEYS']},k2=file:{new_key}",
            "SERVER_KEY_CURRENT": "k2"}
    cli("keys", "reencrypt", env=both)
    cli("bot", "show", bot_id, env=both)

    server_keys = [Path(cli.env["SERVER_KEYS"].split("file:")[1]).read_bytes(),
                   new_key.read_bytes()]
    forbidden: set[str] = set()
    for secret in (bytes(agent), bytes(agent)[:32], signature, *server_keys):
        forbidden |= _forms(secret)
    rows = db.fetchall("SELECT agent_private_key_encrypted AS a, agent_private_key_encrypted_v3"
                       " AS b FROM wallets")
    forbidden |= {v for r in rows for v in r.values() if v}
    forbidden |= {r["h"].split(".")[-1] for r in db.fetchall(
        "SELECT webhook_secret_hash AS h FROM trading_bots WHERE webhook_secret_hash IS NOT NULL")}
    forbidden |= {r["p"].split(".")[-1] for r in db.fetchall(
        "SELECT policy_hmac AS p FROM trading_bots")}

    assert len(cli.runs) >= 15
    assert created.out.count("qvwh_") == 1  # the search below does find a secret where it is
    assert any('"level": "debug"' in run.err for run in cli.runs)  # logs were captured
    for run in cli.runs:
        shown_once = run is created or run.args[:2] == ("bot", "rotate-secret")
        texts = [run.err] if shown_once else [run.out, run.err]
        for text in texts:
            for secret in forbidden | (set() if shown_once else webhook_secrets):
                assert secret not in text, f"secret leaked by {run.args}"
        if shown_once:
            for secret in webhook_secrets:
                assert secret not in run.err, f"webhook secret logged by {run.args}"
