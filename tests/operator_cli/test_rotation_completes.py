"""Rotation completes: after `keys reencrypt` (and one use of each legacy webhook hash) nothing is
left under the old key, which can then be retired; what is only under a retired key is refused."""

from __future__ import annotations

from pathlib import Path

from security.envelope import parse_header
from security.policy import verify_policy_hmac
from security.webhook_auth import (
    authenticate_webhook,
    hash_webhook_secret,
    issue_bound_webhook_secret,
    stored_hash_key_id,
    stored_hash_version,
)
from storage import bots, wallets
from storage.bots import upgrade_stored_hash
from storage.database import Database
from tests.operator_cli.helpers import Cli, write_key


def _bots(cli: Cli) -> tuple[str, str]:
    """One wallet, two bots (no venue needed)."""
    owner = cli.ok("wallet", "create", "--no-fund")["wallet"]
    made = [cli.ok("bot", "create", "--wallet", owner, "--market", market, "--leverage", "2",
                   "--max-position-usd", "100", "--no-venue")["bot_id"]
            for market in ("SOL-PERP", "BTC-PERP")]
    return made[0], made[1]


def _key_ids_of_every_row(db: Database) -> set[str]:
    """Server key ids named by any stored envelope, policy MAC or webhook secret hash."""
    ids = {parse_header(e).key_id for _, e in wallets.legacy_envelopes(db)}
    ids |= {parse_header(e).key_id for _, _, e in bots.umk_envelopes(db)}
    for bot in bots.list_bots(db):
        ids.add(str(bot.policy_hmac).split(".")[1])
    ids |= {str(stored_hash_key_id(h)) for _, h in bots.webhook_secret_hashes(db)}
    return ids


def test_rotation_leaves_no_row_under_the_old_key_and_retiring_it_refuses_old_rows(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    bound_bot, legacy_bot = _bots(cli)
    k1 = cli.ring()
    bound = issue_bound_webhook_secret(k1, bound_bot)
    bots.set_webhook_secret_hash(db, bound_bot, bound.stored_hash)
    legacy_secret = "qvwh_" + "L" * 43
    bots.set_webhook_secret_hash(db, legacy_bot, hash_webhook_secret(
        k1.webhook_peppers()["k1"], "k1", legacy_secret))
    old_policy_mac = bots.get_bot(db, bound_bot).policy_hmac  # type: ignore[union-attr]

    k2 = write_key(tmp_path / "k2.key")
    both = {"SERVER_KEYS": f"{cli.env['SERVER_KEYS']},k2=file:{k2}", "SERVER_KEY_CURRENT": "k2"}
    first = cli.ok("keys", "reencrypt", env=both)
    hashes = first["webhook_secret_hashes"]
    assert hashes["rehashed"] == 1 and hashes["unbound_bot_ids"] == [legacy_bot]
    assert hashes["refused"] == [] and first["previous_key_ids"] == ["k1"]
    assert first["retirable_key_ids"] == []  # the legacy hash still needs k1
    assert stored_hash_key_id(bots.get_bot(db, bound_bot).webhook_secret_hash) == "k2"  # type: ignore[union-attr]

    # The legacy bot's next alert: what the webhook route does with the presented secret.
    ring = cli.ring(both)
    stored = bots.get_bot(db, legacy_bot).webhook_secret_hash  # type: ignore[union-attr]
    auth = authenticate_webhook(ring, legacy_bot, legacy_secret, stored)
    assert auth.ok and auth.rehashed is not None
    assert upgrade_stored_hash(db, legacy_bot, stored, auth.rehashed) == auth.rehashed
    assert upgrade_stored_hash(db, legacy_bot, stored, auth.rehashed) == stored  # CAS: stale
    now = bots.get_bot(db, legacy_bot).webhook_secret_hash  # type: ignore[union-attr]
    assert stored_hash_version(now) == "v2" and stored_hash_key_id(now) == "k2"

    second = cli.ok("keys", "reencrypt", env=both)
    assert second["retirable_key_ids"] == ["k1"] and second["key_ids_in_use"] == ["k2"]
    assert second["webhook_secret_hashes"]["unbound_bot_ids"] == []
    assert _key_ids_of_every_row(db) == {"k2"}

    retired = {**both, "SERVER_KEYS_RETIRED": "k1"}
    third = cli.ok("keys", "reencrypt", env=retired)
    assert third["retired_key_ids"] == ["k1"] and third["previous_key_ids"] == []
    assert third["envelopes"]["refused"] == [] and third["policies"]["refused"] == []
    assert third["removable_key_ids"] == ["k1"]
    for bot_id, secret in ((bound_bot, bound.secret), (legacy_bot, legacy_secret)):
        row = bots.get_bot(db, bot_id)
        assert row is not None
        assert authenticate_webhook(cli.ring(retired), bot_id, secret, row.webhook_secret_hash).ok

    # A policy MAC only under the retired key (say, a row put back from an old backup) is
    # refused by the guard's verification and by the command, and never re-signed.
    bots_before = bots.get_bot(db, bound_bot)
    db.execute("UPDATE trading_bots SET policy_hmac = %s WHERE id = %s",
               (old_policy_mac, bound_bot))
    ring_retired = cli.ring(retired).retiring("k1")
    row = bots.get_bot(db, bound_bot)
    assert row is not None and bots_before is not None
    assert not verify_policy_hmac(ring_retired.policy_keys(), row.policy, row.policy_hmac).ok
    refused = cli("keys", "reencrypt", "--json", env=retired)
    assert refused.code == 1
    assert refused.json["policies"]["refused"] == [{"bot_id": bound_bot,
                                                    "reason": "policy_hmac_retired_key"}]
    assert bots.get_bot(db, bound_bot).policy_hmac == old_policy_mac  # type: ignore[union-attr]
    # The same row with k1 merely previous would verify (and be migrated): retiring is the switch.
    assert verify_policy_hmac(cli.ring(both).policy_keys(), row.policy, row.policy_hmac).ok


def test_a_webhook_hash_copied_onto_another_bot_does_not_authenticate_it(
    cli: Cli, db: Database
) -> None:
    victim, attacker = _bots(cli)
    ring = cli.ring()
    issued = issue_bound_webhook_secret(ring, attacker)
    bots.set_webhook_secret_hash(db, attacker, issued.stored_hash)
    db.execute("UPDATE trading_bots SET webhook_secret_hash = %s WHERE id = %s",
               (issued.stored_hash, victim))
    row = bots.get_bot(db, victim)
    assert row is not None
    result = authenticate_webhook(ring, victim, issued.secret, row.webhook_secret_hash)
    assert (result.ok, result.reason) == (False, "webhook_secret_mismatch")
    report = cli("keys", "reencrypt", "--json")
    assert report.code == 1  # the copy does not open for its row's bot: reported, left alone
    assert report.json["webhook_secret_hashes"]["refused"] == [
        {"kind": "webhook_secret_hash", "ref": victim, "reason": "EnvelopeAuthFailed"}]
    for run in cli.runs:
        assert issued.secret not in run.out + run.err
