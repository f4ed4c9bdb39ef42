"""The CLI on the running daemon's embedded database: shared server, daemon stays ready."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon import Daemon
from tests.operator_cli.helpers import Cli


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    running = Daemon({"VENUE": "drift-devnet", "SERVER_KEYS": "", "DATABASE_URL": ""})
    try:
        yield running.start()
    finally:
        running.stop()


def test_cli_provisions_while_the_daemon_runs_on_the_same_embedded_database(
    daemon: Daemon,
) -> None:
    cli = Cli(dict(daemon.env), daemon.dir)
    wallet = cli.ok("wallet", "create", "--no-fund")["wallet"]  # no devnet RPC from tests
    bot = cli.ok("bot", "create", "--wallet", wallet, "--market", "SOL-PERP", "--leverage", "2",
                 "--max-position-usd", "100")["bot_id"]
    assert cli.ok("estop", "set", "--global")["active"] is True
    listing = cli.ok("bot", "list")
    assert [b["id"] for b in listing["bots"]] == [bot]
    assert (daemon.dir / "state" / "server.key").exists()  # default key, generated once
    assert daemon.get("/readyz").status_code == 200  # the CLI leaving did not stop the server
    assert cli.ok("bot", "show", bot)["global_emergency_stop"] == "stop"
