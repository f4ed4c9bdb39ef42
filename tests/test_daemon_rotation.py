"""Bound webhook hashes and key rotation through the running daemon: a legacy webhook hash is
bound to its bot on first use, a hash copied onto another bot reaches the sandbox with nothing,
a rotation moves every row to the new key (on use and by `keys reencrypt`), and the old key can
then be retired."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg2
import requests

from sandbox.server import SandboxServer
from security.server_key import load_key_ring
from security.webhook_auth import hash_webhook_secret, stored_hash_key_id, stored_hash_version
from tests import pg
from tests.daemon import Daemon, cli_json, done_with_one_trade, key_file, sandbox_fixture

WAIT_S = 60.0


sandbox = sandbox_fixture(seed=17, slot_ms=200)


def sql(url: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def stored_hash(url: str, bot_id: str) -> str:
    return sql(url, "SELECT webhook_secret_hash FROM trading_bots WHERE id = %s", (bot_id,))[0][0]


def orders_at_venue(sandbox: SandboxServer, agent: str) -> int:
    counters = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()["by_authority"]
    mine = counters.get(agent, {})
    return (mine.get("swift_orders_received", 0) + mine.get("transactions_landed", 0)
            + mine.get("transactions_received", 0))


def alert(daemon: Daemon, bot_id: str, secret: str, n: int) -> requests.Response:
    action, position = ("buy", 1) if n % 2 else ("sell", 0)
    return requests.post(f"{daemon.url}/api/webhook/tradingview/{bot_id}", timeout=10,
                         params={"secret": secret},
                         json={"action": action, "contracts": 1, "position_size": position,
                               "timenow": f"2026-12-01T00:01:{n:02d}Z"})


def test_rotation_completes_through_the_running_daemon(sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
    db = pg.fresh_database()
    k1, k2 = key_file(tmp_path / "k1.key"), key_file(tmp_path / "k2.key")
    env = {"DATABASE_URL": db, "SANDBOX_URL": sandbox.url, "AUCTION_DURATION_SLOTS": "10",
           "SERVER_KEYS": f"k1=file:{k1}"}
    daemon = Daemon(env).start()
    state = daemon.env["STATE_DIR"]
    try:
        wallet = cli_json(daemon, "wallet", "create", "--fund", "1000")
        other = cli_json(daemon, "wallet", "create", "--fund", "1000")
        bot = cli_json(daemon, "bot", "create", "--wallet", wallet["wallet"], "--market",
                  "SOL-PERP", "--leverage", "2", "--max-position-usd", "100")["bot_id"]
        victim = cli_json(daemon, "bot", "create", "--wallet", other["wallet"], "--market",
                     "SOL-PERP", "--leverage", "2", "--max-position-usd", "100")["bot_id"]
        # a hash as written before bound hashes existed (v1, unbound), for a secret we know
        secret = "qvwh_" + secrets.token_urlsafe(32)
        pepper = load_key_ring({"k1": f"file:{k1}"}, "k1").webhook_peppers()["k1"]
        sql(db, "UPDATE trading_bots SET webhook_secret_hash = %s WHERE id = %s",
            (hash_webhook_secret(pepper, "k1", secret), bot))

        first = alert(daemon, bot, secret, 1)
        assert first.status_code == 202, first.text
        story = daemon.finished(first.json()["signal_id"])
        assert done_with_one_trade(story), "the first order"
        bound = stored_hash(db, bot)
        assert stored_hash_version(bound) == "v2" and stored_hash_key_id(bound) == "k1"

        # copy the bound hash onto another bot's row: it does not authenticate that bot
        sql(db, "UPDATE trading_bots SET webhook_secret_hash = %s WHERE id = %s",
            (bound, victim))
        copied = alert(daemon, victim, secret, 1)
        assert copied.status_code == 401
        assert orders_at_venue(sandbox, other["agent_public_key"]) == 0
        # the operator repairs the row (`bot rotate-secret` may still write a legacy v1 hash)
        victim_secret = cli_json(daemon, "bot", "rotate-secret", victim)["webhook_secret"]
        daemon.stop()

        # rotation: k2 current, k1 previous; the next alert moves the hash, the command the rest
        rotated = {**env, "SERVER_KEYS": f"k1=file:{k1},k2=file:{k2}",
                   "SERVER_KEY_CURRENT": "k2", "STATE_DIR": state}
        daemon = Daemon(rotated).start()
        second = alert(daemon, bot, secret, 2)
        assert second.status_code == 202, second.text
        story = daemon.finished(second.json()["signal_id"])
        assert done_with_one_trade(story), "the order after rotation"
        assert stored_hash_key_id(stored_hash(db, bot)) == "k2"
        repaired = alert(daemon, victim, victim_secret, 1)
        assert repaired.status_code == 202, repaired.text
        story = daemon.finished(repaired.json()["signal_id"])
        assert done_with_one_trade(story), "the repaired bot's order"
        assert stored_hash_version(stored_hash(db, victim)) == "v2"
        report = cli_json(daemon, "keys", "reencrypt")
        assert report["key_ids_in_use"] == ["k2"] and report["retirable_key_ids"] == ["k1"]
        daemon.stop()

        # retire k1: the daemon still trades, nothing needs the old key
        daemon = Daemon({**rotated, "SERVER_KEYS_RETIRED": "k1"}).start()
        third = alert(daemon, bot, secret, 3)
        assert third.status_code == 202, third.text
        story = daemon.finished(third.json()["signal_id"])
        assert done_with_one_trade(story), "the order after retiring"
        assert orders_at_venue(sandbox, wallet["agent_public_key"]) >= 3
        assert secret not in daemon.log()
    finally:
        daemon.stop()
