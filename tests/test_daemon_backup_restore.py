"""The runbook's backup and restore, exercised. A daemon trades; the database is
dumped online (pg_dump -Fc) and the server key ring and holder id copied; the daemon stops; the
dump is restored (pg_restore) into a fresh database and the files into a fresh STATE_DIR; a
daemon started there trades the same bot with the same wallet: one more order at the sandbox.
Without the key file the restored rows cannot be opened (`keys reencrypt` refuses them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pgserver
import requests

from sandbox.server import SandboxServer
from tests import pg
from tests.daemon import ROOT, Daemon, cli_json, done_with_one_trade, sandbox_fixture

WAIT_S = 60.0
PG_BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"  # the server's own client tools


sandbox = sandbox_fixture(seed=13, slot_ms=200)


def orders_at_venue(sandbox: SandboxServer, agent: str) -> int:
    """Orders of `agent` the venue executed (Swift fills and landed on-chain orders)."""
    counters = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()["by_authority"]
    mine = counters.get(agent, {})
    return mine.get("swift_orders_filled", 0) + mine.get("transactions_landed", 0)


def alert(daemon: Daemon, bot: dict[str, Any], n: int) -> requests.Response:
    """Alert n: opens (odd) or closes (even) one contract: one order each."""
    action, position = ("buy", 1) if n % 2 else ("sell", 0)
    return requests.post(
        f"{daemon.url}/api/webhook/tradingview/{bot['bot_id']}", timeout=10,
        params={"secret": bot["webhook_secret"]},
        json={"action": action, "contracts": 1, "position_size": position,
              "timenow": f"2026-12-01T00:00:{n:02d}Z"})


def test_backup_then_restore_into_a_fresh_state_dir_trades(sandbox: SandboxServer) -> None:
    original_db = pg.fresh_database()
    env = {"DATABASE_URL": original_db, "SANDBOX_URL": sandbox.url,
           "AUCTION_DURATION_SLOTS": "10"}
    first = Daemon(env).start()  # SERVER_KEYS empty: STATE_DIR/server.key, generated at start
    second: Daemon | None = None
    backup = Path(tempfile.mkdtemp(prefix="qv-backup-"))
    try:
        wallet = cli_json(first, "wallet", "create", "--fund", "1000")
        bot = cli_json(first, "bot", "create", "--wallet", wallet["wallet"], "--market", "SOL-PERP",
                  "--leverage", "2", "--max-position-usd", "100")
        agent = wallet["agent_public_key"]
        answer = alert(first, bot, 1)
        assert answer.status_code == 202, answer.text
        story = first.finished(answer.json()["signal_id"])
        assert done_with_one_trade(story), "the first order"
        assert orders_at_venue(sandbox, agent) == 1

        # Backup, as the runbook says: the database online, then the key ring and holder id.
        state = Path(first.env["STATE_DIR"])
        dump = backup / "quantumvault.dump"
        subprocess.run([str(PG_BIN / "pg_dump"), "--format=custom", "--no-owner",
                        f"--file={dump}", original_db], check=True, timeout=120)
        for name in ("server.key", "holder_id"):
            shutil.copy2(state / name, backup / name)
        assert (backup / "server.key").stat().st_mode & 0o077 == 0
        assert first.process is not None
        first.stop()  # the machine is gone

        # Restore into a fresh database and a fresh STATE_DIR.
        restored_db = pg.fresh_database()
        subprocess.run([str(PG_BIN / "pg_restore"), "--no-owner", "--exit-on-error",
                        f"--dbname={restored_db}", str(dump)], check=True, timeout=120)
        lost_key = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "runtime.py"), "keys",
             "reencrypt", "--dry-run", "--json"], capture_output=True, text=True, timeout=90,
            env={**first.env, "DATABASE_URL": restored_db,
                 "STATE_DIR": str(backup / "without-key")})
        assert lost_key.returncode == 1  # a new server.key opens none of the restored rows
        assert json.loads(lost_key.stdout)["envelopes"]["refused"]

        second = Daemon({**env, "DATABASE_URL": restored_db})
        new_state = Path(second.env["STATE_DIR"])
        new_state.mkdir(parents=True)
        new_state.chmod(0o700)
        for name in ("server.key", "holder_id"):
            shutil.copy2(backup / name, new_state / name)
        second.start()
        assert second.get("/readyz").status_code == 200
        answer = alert(second, bot, 2)
        assert answer.status_code == 202, answer.text
        story = second.finished(answer.json()["signal_id"])
        assert done_with_one_trade(story), "the order after restore"
        assert orders_at_venue(sandbox, agent) == 2
        secret_free = second.log() + lost_key.stdout + lost_key.stderr
        assert bot["webhook_secret"] not in secret_free
        assert (backup / "server.key").read_bytes().hex() not in secret_free
    finally:
        first.stop()
        if second is not None:
            second.stop()
        shutil.rmtree(backup, ignore_errors=True)
