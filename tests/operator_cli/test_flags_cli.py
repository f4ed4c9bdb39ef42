"""`flags show|set|reset` through the real CLI: values parsed like the environment, stored with
who and when, every change recorded and announced (NOTIFY) for the running daemon."""

from __future__ import annotations

import select

import psycopg2
import psycopg2.extensions

from storage.database import Database
from storage.flags import FLAGS_CHANNEL
from tests.operator_cli.helpers import Cli, snapshot


def test_show_lists_every_live_flag_with_the_environment_values(cli: Cli) -> None:
    out = cli.ok("flags", "show", env={"SWIFT_ROLLOUT_PERCENT": "10"})
    assert set(out["flags"]) == {"SWIFT_ENABLED", "SWIFT_FALLBACK_ENABLED",
                                 "SWIFT_RETRY_WITH_SWIFT", "SWIFT_ROLLOUT_PERCENT",
                                 "SWIFT_CRITICAL_ORDERS_LEGACY", "SWIFT_SUPPORTED_MARKETS"}
    assert out["flags"]["SWIFT_ROLLOUT_PERCENT"] == {
        "value": 10, "source": "environment", "environment_value": 10, "updated_by": None,
        "updated_at": None}
    assert out["flags"]["SWIFT_SUPPORTED_MARKETS"]["value"] == []
    assert out["changes"] == []
    human = cli("flags", "show")
    assert human.code == 0 and "SWIFT_ENABLED=true  (from the environment)" in human.out


def test_set_stores_parses_records_and_notifies(cli: Cli, db: Database,
                                                database_url: str) -> None:
    listener = psycopg2.connect(database_url)
    listener.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    listener.cursor().execute(f"LISTEN {FLAGS_CHANNEL}")
    try:
        out = cli.ok("flags", "set", "swift_enabled", "off", "--reason", "incident 7",
                     "--by", "alice")
        assert out == {"flag": "SWIFT_ENABLED", "value": False, "previous": True,
                       "previous_source": "environment", "changed_by": "alice",
                       "reason": "incident 7"}
        select.select([listener], [], [], 5)  # delivered at the CLI's commit
        listener.poll()
        assert [n.payload for n in listener.notifies] == ['{"flag": "SWIFT_ENABLED"}']
    finally:
        listener.close()
    markets = cli.ok("flags", "set", "SWIFT_SUPPORTED_MARKETS", "sol, btc-perp,SOL-PERP")
    assert markets["value"] == ["SOL-PERP", "BTC-PERP"]
    cli.ok("flags", "set", "SWIFT_ROLLOUT_PERCENT", "25")
    again = cli.ok("flags", "set", "SWIFT_ROLLOUT_PERCENT", "50")
    assert (again["previous"], again["previous_source"]) == (25, "database")
    shown = cli.ok("flags", "show")
    assert shown["flags"]["SWIFT_ENABLED"]["value"] is False
    assert shown["flags"]["SWIFT_ENABLED"]["updated_by"] == "alice"
    assert shown["flags"]["SWIFT_ROLLOUT_PERCENT"]["source"] == "database"
    assert [(c["flag"], c["old_value"], c["new_value"]) for c in shown["changes"]] == [
        ("SWIFT_ROLLOUT_PERCENT", 25, 50), ("SWIFT_ROLLOUT_PERCENT", None, 25),
        ("SWIFT_SUPPORTED_MARKETS", None, ["SOL-PERP", "BTC-PERP"]),
        ("SWIFT_ENABLED", None, False)]
    assert db.fetchone("SELECT value FROM runtime_flags WHERE key = 'SWIFT_ENABLED'")[
        "value"] is False


def test_reset_returns_to_the_environment_and_is_recorded(cli: Cli, db: Database) -> None:
    cli.ok("flags", "set", "SWIFT_RETRY_WITH_SWIFT", "false", "--by", "bob")
    reset = cli.ok("flags", "reset", "SWIFT_RETRY_WITH_SWIFT", "--by", "bob")
    assert reset["reset"] is True and reset["value"] is True
    assert cli.ok("flags", "reset", "SWIFT_RETRY_WITH_SWIFT")["reset"] is False
    shown = cli.ok("flags", "show")
    assert shown["flags"]["SWIFT_RETRY_WITH_SWIFT"]["source"] == "environment"
    assert [(c["old_value"], c["new_value"], c["changed_by"]) for c in shown["changes"]] == [
        (False, None, "bob"), (None, False, "bob")]


def test_bad_names_and_values_change_nothing(cli: Cli, db: Database) -> None:
    before = snapshot(db)
    for args, message in [
        (("set", "SWIFT_RATE_PER_S", "5"), "not a live flag"),
        (("set", "SWIFT_ENABLED", "maybe"), "invalid SWIFT_ENABLED value"),
        (("set", "SWIFT_ROLLOUT_PERCENT", "101"), "invalid SWIFT_ROLLOUT_PERCENT value"),
        (("set", "SWIFT_SUPPORTED_MARKETS", "NOPE-PERP"), "unknown perp market"),
        (("reset", "WEBHOOK_PORT"), "not a live flag"),
    ]:
        result = cli("flags", *args, "--json")
        assert result.code == 1, args
        assert set(result.json) == {"error"} and message in result.json["error"], args
    assert snapshot(db) == before
    assert db.fetchone("SELECT count(*) AS n FROM runtime_flag_changes")["n"] == 0
