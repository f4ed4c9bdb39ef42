"""`estop set|clear` through the real CLI: the trade guard sees it, a daemon is told at once."""

from __future__ import annotations

import json
import select

import psycopg2
import psycopg2.extensions

from custody.trade_guard import guard_trade
from security.emergency_stop import OrderIntent, OrderKind, OrderOrigin
from storage.bots import Bot, get_bot
from storage.database import Database
from storage.emergency_stops import NOTIFY_CHANNEL
from tests.operator_cli.helpers import Cli, snapshot

OPEN = OrderIntent(OrderOrigin.MANUAL, OrderKind.OPEN, reduce_only=False)


def _bot(cli: Cli, db: Database) -> tuple[str, Bot]:
    wallet = cli.ok("wallet", "create", "--no-fund")["wallet"]
    created = cli.ok("bot", "create", "--wallet", wallet, "--market", "SOL-PERP", "--leverage",
                     "2", "--max-position-usd", "100")
    bot = get_bot(db, created["bot_id"])
    assert bot is not None
    return wallet, bot


def test_wallet_stop_set_and_clear(cli: Cli, db: Database) -> None:
    wallet, bot = _bot(cli, db)
    ring = cli.ring()
    assert guard_trade(db, ring, bot, OPEN).allowed
    out = cli.ok("estop", "set", "--wallet", wallet, "--reason", "key suspected")
    assert out == {"scope": "wallet", "wallet": wallet, "active": True, "mode": "stop",
                   "stop_id": out["stop_id"], "reason": "key suspected"}
    assert guard_trade(db, ring, bot, OPEN).reason == "wallet_emergency_stop"
    assert cli.ok("bot", "show", bot.id)["wallet_emergency_stop"] == "stop"
    cleared = cli.ok("estop", "clear", "--wallet", wallet)
    assert cleared["was_set"] is True and cleared["active"] is False
    assert guard_trade(db, ring, bot, OPEN).allowed
    again = cli("estop", "clear", "--wallet", wallet)
    assert again.code == 0 and "nothing to clear" in again.out


def test_global_stop_with_flatten(cli: Cli, db: Database) -> None:
    _, bot = _bot(cli, db)
    ring = cli.ring()
    result = cli("estop", "set", "--global", "--flatten", "--reason", "venue incident")
    assert result.code == 0 and len(result.out.splitlines()) == 1
    assert "global emergency stop SET" in result.out
    show = cli.ok("bot", "show", bot.id)
    assert show["global_emergency_stop"] == "flatten"
    assert guard_trade(db, ring, bot, OPEN).reason == "global_emergency_stop"
    assert cli.ok("estop", "clear", "--global")["was_set"] is True
    assert guard_trade(db, ring, bot, OPEN).allowed


def test_unknown_wallet_and_bad_scope_are_refused(cli: Cli, db: Database) -> None:
    before = snapshot(db)
    unknown = cli("estop", "set", "--wallet", "nobody", "--json")
    assert unknown.code == 1 and unknown.json == {"error": "unknown wallet nobody"}
    both = cli("estop", "set", "--wallet", "x", "--global")
    assert both.code == 2 and "not allowed with" in both.err
    neither = cli("estop", "clear")
    assert neither.code == 2
    assert snapshot(db) == before


def test_estop_works_without_a_readable_server_key(cli: Cli, db: Database) -> None:
    wallet, _ = _bot(cli, db)
    broken = {"SERVER_KEYS": "k1=file:/nonexistent/key"}
    assert cli("bot", "list", env=broken).code == 1
    assert cli.ok("estop", "set", "--wallet", wallet, env=broken)["active"] is True


def test_a_listening_daemon_is_notified(cli: Cli, db: Database, database_url: str) -> None:
    wallet, _ = _bot(cli, db)
    conn = psycopg2.connect(database_url)
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    try:
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {NOTIFY_CHANNEL}")
        stop_id = cli.ok("estop", "set", "--wallet", wallet, "--flatten")["stop_id"]
        ready, _, _ = select.select([conn], [], [], 30)
        assert ready, "no NOTIFY within 30 s"
        conn.poll()
        payload = json.loads(conn.notifies[0].payload)
        assert payload == {"scope": "wallet", "wallet": wallet, "mode": "flatten",
                           "stop_id": stop_id}
    finally:
        conn.close()
