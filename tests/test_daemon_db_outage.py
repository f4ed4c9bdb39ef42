"""A database outage while alerts arrive loses none: a whole daemon behind a loopback TCP proxy
that the test cuts (every connection reset, new ones refused) and restores, and a daemon on its
embedded PostgreSQL whose postmaster is killed. Every alert answers 202, and once the database
is back each one produces exactly one order at the sandbox."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import gevent
import requests
from gevent.server import StreamServer

from sandbox.server import SandboxServer
from storage.signals import SignalWaiter
from tests.daemon import Daemon, cli_json, key_file, sandbox_fixture, wait_until

WAIT_S = 60.0


class CuttableProxy:
    """TCP on loopback -> the test PostgreSQL's Unix socket; `cut()` resets every connection
    and refuses new ones (what a failover looks like to a client), `restore()` ends that."""

    def __init__(self, unix_path: str) -> None:
        self._unix_path = unix_path
        self._open: set[socket.socket] = set()
        self.is_cut = False
        self._server = StreamServer(("127.0.0.1", 0), self._handle)
        self._server.start()
        self.port = self._server.server_port

    def _handle(self, client: socket.socket, _address: Any) -> None:
        if self.is_cut:
            client.close()
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self._unix_path)
        self._open.update((client, upstream))
        pipes = [gevent.spawn(_pipe, client, upstream), gevent.spawn(_pipe, upstream, client)]
        gevent.joinall(pipes, count=1)
        for sock in (client, upstream):
            self._open.discard(sock)
            sock.close()
        gevent.killall(pipes)

    def cut(self) -> None:
        self.is_cut = True
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.is_cut = False

    def stop(self) -> None:
        self.cut()
        self._server.stop(timeout=2)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass


sandbox = sandbox_fixture(seed=11, slot_ms=200)


def fills_at_venue(sandbox: SandboxServer, agent: str) -> int:
    """Orders of `agent` the venue executed: Swift fills and landed on-chain orders (a Swift
    order that expired unfilled before its on-chain fallback is not one)."""
    counters = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()["by_authority"]
    mine = counters.get(agent, {})
    return mine.get("swift_orders_filled", 0) + mine.get("transactions_landed", 0)


def one_trade_each(daemon: Daemon, signal_ids: list[str]) -> bool:
    """Every signal finished done with exactly one trade, completed."""
    shown = [cli_json(daemon, "signal", "show", signal_id) for signal_id in signal_ids]
    return all(s["status"] == "done" and [t["status"] for t in s["trades"]] == ["completed"]
               for s in shown)


def alert(daemon: Daemon, bot: dict[str, Any], n: int, secret: str | None = None
          ) -> requests.Response:
    """Alert number n: opens (odd) and closes (even) one contract, so each makes one order."""
    action, position = ("buy", 1) if n % 2 else ("sell", 0)
    return requests.post(
        f"{daemon.url}/api/webhook/tradingview/{bot['bot_id']}", timeout=10,
        params={"secret": secret or bot["webhook_secret"]},
        json={"action": action, "contracts": 1, "position_size": position,
              "timenow": f"2026-12-01T00:00:{n:02d}Z"})


def server_key(tmp_path: Path) -> str:
    key = key_file(tmp_path / "server.key")
    return f"k1=file:{key}"


def ready(daemon: Daemon) -> int:
    return daemon.get("/readyz").status_code


def test_alerts_during_an_outage_are_journaled_then_each_trades_once(
        database_url: str, tmp_path: Path, sandbox: SandboxServer) -> None:
    url = urlparse(database_url)
    proxy = CuttableProxy(os.path.join(parse_qs(url.query)["host"][0], ".s.PGSQL.5432"))
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{proxy.port}{url.path}",
           "SANDBOX_URL": sandbox.url, "SERVER_KEYS": server_key(tmp_path),
           "ADMIN_TOKEN": "outage" * 6, "HEALTH_INTERVAL_MS": "300"}
    daemon = Daemon(env)
    waiter = SignalWaiter(database_url)  # the test's own view of the database, not proxied
    try:
        daemon.start()
        wallet = cli_json(daemon, "wallet", "create")
        bot = cli_json(daemon, "bot", "create", "--wallet", wallet["wallet"], "--market",
                  "SOL-PERP", "--leverage", "5", "--max-position-usd", "300")
        first = alert(daemon, bot, 1)  # the daemon sees the bot while the database is up
        assert first.status_code == 202 and first.json()["status"] == "accepted"
        assert waiter.wait([first.json()["signal_id"]], WAIT_S) == {
            first.json()["signal_id"]: "done"}

        proxy.cut()
        wait_until(lambda: ready(daemon) == 503, "/readyz says 503 during the outage")
        answers = [alert(daemon, bot, n) for n in range(2, 7)]
        assert [a.status_code for a in answers] == [202] * 5
        assert {(a.json()["status"], a.json()["queued"]) for a in answers} == {
            ("queued", "journal")}
        journal = Path(daemon.env["STATE_DIR"]) / "journal"
        assert list(journal.iterdir())
        wrong = alert(daemon, bot, 7, secret="qvwh_" + "x" * 43)
        assert wrong.status_code == 401  # the cached hash still refuses a wrong secret
        unknown = alert(daemon, {**bot, "bot_id": "not-a-bot"}, 8)
        assert unknown.status_code == 503  # cannot tell: refused, never guessed
        # both listeners saw the outage, and try again instead of crashing their actors
        wait_until(lambda: daemon.log().count("lost the connection listening on") >= 2,
                   "the listeners notice the outage")

        proxy.restore()
        ids = [a.json()["signal_id"] for a in answers]
        assert waiter.wait(ids, WAIT_S) == dict.fromkeys(ids, "done")
        assert one_trade_each(daemon, ids)
        assert fills_at_venue(sandbox, wallet["agent_public_key"]) == 6
        wait_until(lambda: ready(daemon) == 200, "/readyz says 200 again")
        assert not list(journal.iterdir())
        assert daemon.process is not None and daemon.process.poll() is None
        assert "crashed" not in daemon.log()  # no actor restarted: nothing to give up on
    finally:
        waiter.close()
        daemon.stop()
        proxy.stop()


def test_the_embedded_server_is_started_again_when_its_postmaster_dies(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    daemon = Daemon({"SANDBOX_URL": sandbox.url, "SERVER_KEYS": server_key(tmp_path),
                     "ADMIN_TOKEN": "outage" * 6, "HEALTH_INTERVAL_MS": "300"})
    try:
        daemon.start()
        wallet = cli_json(daemon, "wallet", "create")
        bot = cli_json(daemon, "bot", "create", "--wallet", wallet["wallet"], "--market",
                  "SOL-PERP", "--leverage", "5", "--max-position-usd", "300")
        answers = [alert(daemon, bot, 1)]
        pgdata = Path(daemon.env["STATE_DIR"]) / "pgdata"
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        answers += [alert(daemon, bot, n) for n in range(2, 5)]
        assert [a.status_code for a in answers] == [202] * 4
        assert {a.json()["status"] for a in answers} <= {"accepted", "queued"}
        wait_until(lambda: "embedded PostgreSQL up again" in daemon.log(), "server revived")
        wait_until(lambda: ready(daemon) == 200, "/readyz says 200 again")
        ids = [a.json()["signal_id"] for a in answers]

        def finished() -> bool:
            shown = [cli_json(daemon, "signal", "show", i) for i in ids]
            return all(s["status"] not in ("accepted", "processing") for s in shown)

        wait_until(finished, "every alert finished")
        assert one_trade_each(daemon, ids)
        assert fills_at_venue(sandbox, wallet["agent_public_key"]) == 4
        assert daemon.process is not None and daemon.process.poll() is None
    finally:
        daemon.stop()
