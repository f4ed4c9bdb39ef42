"""The lab a resilience bench runs in: a private PostgreSQL, the exchange sandbox, daemons, bots.

Imported by bench/resilience_bench.py (and through it by bench/scale_bench.py), which puts the
repository root on sys.path (and patches gevent) before it imports it.
"""

import argparse
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import psycopg2
import psycopg2.extensions
import requests

from config.settings import SETTINGS
from tests.daemon import Daemon, free_port, key_file, wait_until

ROOT = Path(__file__).resolve().parent.parent
HTTP_TIMEOUT_S = 10.0
CLI_PARALLEL = 3
DEFAULTS = {s.name: s.default for s in SETTINGS}


# --- the private PostgreSQL and the sandbox ---------------------------------------------------


class PrivatePostgres:
    """A pgserver PostgreSQL in a temp dir that this script alone uses, stops and starts."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qv-bench-pg-"))
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver._commands import pg_ctl
        self._pg_ctl = pg_ctl
        self.server = pgserver.get_server(self.dir / "pgdata", cleanup_mode="delete")
        self.base_uri = self.server.get_uri()

    def database(self) -> str:
        """A new empty database; its URI."""
        name = "bench_" + uuid.uuid4().hex[:10]
        conn = psycopg2.connect(self.base_uri)
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.base_uri.replace("/postgres?", f"/{name}?")

    def stop(self) -> None:
        """`pg_ctl stop -m fast` (waits until it is down)."""
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
                     user=self.server.system_user)

    def start(self) -> None:
        """Start it again, as pgserver does (`pg_ctl -w start`, same socket directory)."""
        with self.server._lock:
            self.server.ensure_postgres_running()
        if self.server.get_uri() != self.base_uri:
            raise RuntimeError("PostgreSQL came back on another socket")

    def close(self) -> None:
        """Stop and delete it."""
        with contextlib.suppress(Exception):
            self.server.cleanup()


class Sandbox:
    """`python -m sandbox` as a child process (it outlives a daemon killed with SIGKILL)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "sandbox", "--port", str(self.port),
                     "--seed", str(args.seed), "--slot-ms", str(args.slot_ms),
                     "--rpc-latency-ms", str(args.rpc_latency_ms),
                     "--rpc-rps-limit", str(args.rpc_rps_limit),
                     "--swift-latency-ms", str(args.swift_latency_ms),
                     "--fill-profile", args.fill_profile]
        self.log_path = Path(tempfile.mkdtemp(prefix="qv-bench-sandbox-")) / "sandbox.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_until(self._up, "the sandbox answers", 30)

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.url}/sandbox/stats", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def fills(self, authority: str, since: float) -> int:
        """Fills the sandbox booked for `authority` at or after `since` (wall time)."""
        answer = requests.get(f"{self.url}/sandbox/fills", params={"authority": authority},
                              timeout=HTTP_TIMEOUT_S)
        answer.raise_for_status()
        return sum(1 for f in answer.json()["fills"] if f.get("at", 0.0) >= since)

    def close(self) -> None:
        """Terminate it."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- the daemon -------------------------------------------------------------------------------


@dataclass
class Bot:
    """A bot that takes alerts: id, secret, and its agent's authority at the venue."""

    bot_id: str
    secret: str
    authority: str
    sent: int = 0  # alerts sent so far (the next one opens when even)


class Lab:
    """The sandbox, the private PostgreSQL, and how to start daemons against them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="qv-bench-"))
        key = key_file(self.dir / "server.key")
        self.server_keys = f"k1=file:{key}"
        self.pg = PrivatePostgres()
        self.sandbox = Sandbox(args)

    def env(self, database_url: str) -> dict[str, str]:
        """A daemon's settings: the defaults, our database and sandbox, generous bot limits."""
        return {"DATABASE_URL": database_url, "SANDBOX_URL": self.sandbox.url,
                "SERVER_KEYS": self.server_keys, "ADMIN_TOKEN": secrets.token_hex(16),
                "WEBHOOK_BOT_RATE_PER_S": "1000", "WEBHOOK_BOT_BURST": "1000",
                "SUPERVISOR_BACKOFF_BASE_MS": DEFAULTS["SUPERVISOR_BACKOFF_BASE_MS"]}

    def daemon(self, env: dict[str, str]) -> Daemon:
        """A started daemon."""
        return Daemon(env).start()

    @staticmethod
    def cli(daemon: Daemon, *args: str) -> dict[str, Any]:
        """One operator CLI command (`--json`); its last JSON line."""
        result = daemon.cli(*args, "--json")
        if result.returncode != 0:
            raise RuntimeError(f"CLI {args[:2]} failed: {result.stderr[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def bot(self, daemon: Daemon) -> Bot:
        """A funded wallet and one SOL-PERP bot on it."""
        wallet = self.cli(daemon, "wallet", "create", "--fund", "1000")
        bot = self.cli(daemon, "bot", "create", "--wallet", wallet["wallet"], "--market",
                       "SOL-PERP", "--leverage", "5", "--max-position-usd", "300")
        return Bot(bot["bot_id"], bot["webhook_secret"], wallet["agent_public_key"])

    def bots(self, daemon: Daemon, n: int) -> list[Bot]:
        """`n` independent bots, provisioned a few CLI commands at a time."""
        pool = gevent.pool.Pool(CLI_PARALLEL)
        return list(pool.imap(lambda _i: self.bot(daemon), range(n)))

    def fleet(self, daemon: Daemon, subscribers: int) -> tuple[Bot, list[Bot]]:
        """A published source bot and `subscribers` subscriber bots (each its own wallet)."""
        source = self.bot(daemon)
        self.cli(daemon, "bot", "publish", source.bot_id, "--profit-share-percent", "10")

        def subscribe(_i: int) -> Bot:
            wallet = self.cli(daemon, "wallet", "create", "--fund", "1000")
            sub = self.cli(daemon, "bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                           source.bot_id, "--capital-usd", "200")
            return Bot(sub["subscriber_bot_id"], "", wallet["agent_public_key"])

        pool = gevent.pool.Pool(CLI_PARALLEL)
        return source, list(pool.imap(subscribe, range(subscribers)))

    def close(self) -> None:
        """Stop the sandbox and the PostgreSQL."""
        self.sandbox.close()
        self.pg.close()


@contextlib.contextmanager
def running(lab: Lab, env: dict[str, str]) -> Iterator[list[Daemon]]:
    """Daemons started within (the first one started here) are stopped at the end."""
    daemons = [lab.daemon(env)]
    try:
        yield daemons
    finally:
        for d in daemons:
            with contextlib.suppress(Exception):
                d.stop()


def restart(lab: Lab, env: dict[str, str], old: Daemon) -> Daemon:
    """A new daemon on the old one's STATE_DIR (its journal and bot leases)."""
    return lab.daemon({**env, "STATE_DIR": old.env["STATE_DIR"]})


def fills_per_bot(lab: Lab, bots: list[Bot], since: float) -> list[int]:
    """Fills at the sandbox per bot since `since` (wall time)."""
    return [lab.sandbox.fills(b.authority, since) for b in bots]
