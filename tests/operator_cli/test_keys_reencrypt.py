"""`keys reencrypt`: a second server key becomes current, everything moves, the old one goes."""

from __future__ import annotations

import secrets
from pathlib import Path

from custody.trade_guard import guard_trade
from security.agent_keys import open_agent_privkey_legacy
from security.emergency_stop import OrderIntent, OrderKind, OrderOrigin
from security.envelope import parse_header
from security.execution import open_umk_for_bot, seal_umk_for_bot
from security.key_hierarchy import UserMasterKey
from security.policy import verify_policy_hmac
from security.server_key import load_key_ring
from storage import bots, wallets
from storage.database import Database
from tests.operator_cli.helpers import Cli, snapshot, write_key

OPEN = OrderIntent(OrderOrigin.WEBHOOK, OrderKind.OPEN, reduce_only=False)


def _provision(cli: Cli, db: Database) -> dict[str, str]:
    """Two wallets, a published source bot, a second bot, a subscriber and one sealed UMK."""
    owner = cli.ok("wallet", "create", "--no-fund")["wallet"]
    follower = cli.ok("wallet", "create", "--no-fund")["wallet"]
    source = cli.ok("bot", "create", "--wallet", owner, "--market", "SOL-PERP", "--leverage",
                    "3", "--max-position-usd", "900")["bot_id"]
    other = cli.ok("bot", "create", "--wallet", owner, "--market", "BTC-PERP", "--leverage",
                   "2", "--max-position-usd", "50", "--no-venue")["bot_id"]  # no RPC here
    cli.ok("bot", "publish", source, "--profit-share-percent", "10")
    sub = cli.ok("bot", "subscribe", "--wallet", follower, "--to", source, "--capital-usd",
                 "100")["subscriber_bot_id"]
    umk = UserMasterKey(owner, secrets.token_bytes(32))
    db.execute("UPDATE trading_bots SET umk_encrypted_for_bot = %s WHERE id = %s",
               (seal_umk_for_bot(cli.ring(), umk, source), source))
    return {"owner": owner, "follower": follower, "source": source, "other": other, "sub": sub,
            "umk": umk.key.hex()}


def _rotation_env(cli: Cli, tmp_path: Path) -> tuple[dict[str, str], Path]:
    new_key = write_key(tmp_path / "k2.key")
    old = cli.env["SERVER_KEYS"]
    return {"SERVER_KEYS": f"{old},k2=file:{new_key}", "SERVER_KEY_CURRENT": "k2"}, new_key


def test_rotation_moves_everything_to_the_new_key_then_the_old_key_goes(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    ids = _provision(cli, db)
    both, new_key = _rotation_env(cli, tmp_path)
    assert cli.ok("bot", "show", ids["source"], env=both)["policy"] == "ok"

    before = snapshot(db)
    dry = cli.ok("keys", "reencrypt", "--dry-run", env=both)
    assert dry["envelopes"]["reencrypted"] == 3 and dry["policies"]["resigned"] == 3
    assert snapshot(db) == before

    out = cli.ok("keys", "reencrypt", env=both)
    assert out["current_key_id"] == "k2" and out["loaded_key_ids"] == ["k1", "k2"]
    assert out["envelopes"] == {"reencrypted": 3, "already_current": 0, "changed_meanwhile": 0,
                                "refused": []}
    assert out["policies"] == {"resigned": 3, "already_current": 0, "changed_meanwhile": 0,
                               "refused": []}
    webhook = out["webhook_secret_hashes"]
    assert webhook["refused"] == [] and webhook["changed_meanwhile"] == 0
    # bound (v2) hashes move with the command; legacy (v1) ones wait for their bot's next alert
    assert webhook["rehashed"] + len(webhook["unbound_bot_ids"]) == 2
    if webhook["unbound_bot_ids"]:
        assert out["removable_key_ids"] == [] and out["retirable_key_ids"] == []  # still k1

    new_only = load_key_ring({"k2": f"file:{new_key}"}, "k2")
    for address, envelope in wallets.legacy_envelopes(db):
        assert parse_header(envelope).key_id == "k2"
        assert len(open_agent_privkey_legacy(new_only, address, envelope)) == 64
    [(bot_id, wallet, sealed)] = bots.umk_envelopes(db)
    assert parse_header(sealed).key_id == "k2"
    assert open_umk_for_bot(new_only, wallet, bot_id, sealed).key.hex() == ids["umk"]
    for bot in bots.list_bots(db):
        assert verify_policy_hmac(new_only.policy_keys(), bot.policy, bot.policy_hmac).ok

    for bot_id in (ids["source"], ids["other"]):
        cli.ok("bot", "rotate-secret", bot_id, env=both)
    again = cli.ok("keys", "reencrypt", env=both)
    assert again["envelopes"]["already_current"] == 3 and again["policies"]["already_current"] == 3
    assert again["removable_key_ids"] == ["k1"]

    k2_only = {"SERVER_KEYS": f"k2=file:{new_key}", "SERVER_KEY_CURRENT": ""}
    listing = cli.ok("bot", "list", env=k2_only)
    assert [b["policy"] for b in listing["bots"]] == ["ok", "ok", "ok"]
    source = bots.get_bot(db, ids["source"])
    assert source is not None and guard_trade(db, new_only, source, OPEN).allowed


def test_a_tampered_policy_is_reported_and_not_resigned(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    ids = _provision(cli, db)
    db.execute("UPDATE trading_bots SET leverage = 20 WHERE id = %s", (ids["other"],))
    tampered_mac = bots.get_bot(db, ids["other"]).policy_hmac  # type: ignore[union-attr]
    both, _ = _rotation_env(cli, tmp_path)
    result = cli("keys", "reencrypt", "--json", env=both)
    assert result.code == 1
    out = result.json
    assert out["policies"]["refused"] == [{"bot_id": ids["other"],
                                           "reason": "policy_hmac_mismatch"}]
    assert out["policies"]["resigned"] == 2 and out["envelopes"]["reencrypted"] == 3
    assert "k1" in out["key_ids_in_use"] and "k1" not in out["removable_key_ids"]
    assert any(ids["other"] in line for line in result.error_lines())
    still = bots.get_bot(db, ids["other"])
    assert still is not None and still.policy_hmac == tampered_mac


def test_a_current_key_that_is_not_in_the_ring_is_refused(cli: Cli, db: Database) -> None:
    before = snapshot(db)
    result = cli("keys", "reencrypt", "--json", env={"SERVER_KEY_CURRENT": "k9"})
    assert result.code == 1 and "SERVER_KEY_CURRENT" in result.json["error"]
    assert snapshot(db) == before
