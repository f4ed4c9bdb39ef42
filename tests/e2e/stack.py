"""The daemon's whole tree in-process: real PostgreSQL, real sandbox, real HTTP, real CLI.

Tests fire alerts at the webhook over loopback HTTP, provision wallets and bots with the same
CLI an operator uses, and read outcomes from the database and from the sandbox's own counters.
The sandbox's slots are 100 ms and auctions 10 slots, so a Swift order ends within seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

import runtime
from actors.services import Services
from actors.webhook import GetAddress
from config import load_settings
from sandbox.server import SandboxServer
from storage.signals import SignalWaiter
from supervision import ChildSpec, whereis
from tests.daemon import free_port, key_file
from tests.venue_view import counters, orders_received, position

ADMIN = "e2e-admin-token-xxxxxxxxxxxxxxxx"
# children of the tree a test swaps (or, with None, leaves out), made once services exist
Changes = Callable[[Services], Mapping[str, ChildSpec | None]]
WAIT_S = 60.0


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ replaced for the duration (the CLI reads its settings from it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sandbox_get(stack: Stack, path: str, **params: Any) -> dict[str, Any]:
    """GET one of the sandbox's own routes (/sandbox/stats, /sandbox/fills, ...): its JSON."""
    answer = requests.get(f"{stack.sandbox.url}{path}", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def copies(stack: Stack, signal_id: str) -> dict[str, str]:
    """The copies of a source signal: subscriber bot id -> the copy's signal id."""
    rows = stack.db.fetchall("SELECT trading_bot_id, id FROM webhook_signals"
                             " WHERE parent_signal_id = %s", (signal_id,))
    return {r["trading_bot_id"]: r["id"] for r in rows}


def copy_ids(stack: Stack, signal_id: str) -> list[str]:
    """The signal ids of a source signal's copies."""
    return list(copies(stack, signal_id).values())


class Stack:
    """One database, one sandbox, one supervision tree, one webhook server; as a context
    manager, closed (sandbox included) when the block ends."""

    def __init__(self, database_url: str, state_dir: Path, sandbox: SandboxServer | None = None,
                 changes: Changes | None = None, **overrides: str) -> None:
        self.sandbox = sandbox or SandboxServer("127.0.0.1", 0, seed=11, slot_ms=100)
        if sandbox is None:
            self.sandbox.start()
        key = state_dir / "server.key"
        if not key.exists():
            key_file(key)
        self.env = {
            **os.environ, "DATABASE_URL": database_url, "STATE_DIR": str(state_dir),
            "SERVER_KEYS": f"k1=file:{key}", "SANDBOX_URL": self.sandbox.url,
            "RPC_BACKUP_URL": self.sandbox.backup_rpc_url, "WEBHOOK_PORT": "0",
            "ADMIN_PORT": "0", "CRASH_DRILLS_ENABLED": "true",
            "ADMIN_TOKEN": ADMIN, "AUCTION_DURATION_SLOTS": "10", "LOG_LEVEL": "info",
            "SWIFT_HEALTH_CHECK_INTERVAL_MS": "1000", "HEALTH_INTERVAL_MS": "1000",
            "EXECUTION_BUDGET_MS": "20000", "SUPERVISOR_BACKOFF_BASE_MS": "10",
            "METRICS_PORT": str(free_port()), **overrides}
        # assembled and started exactly as `quantumvault run` does (one process, WORKERS=0)
        self._parts = contextlib.ExitStack()
        self.services = self._parts.enter_context(
            runtime.assembled(load_settings(self.env), self.env))
        self.db = self.services.db
        self.exits: list[Any] = []
        root = runtime.start_tree(self.services, self.exits.append,
                                  changes=changes(self.services) if changes else None)
        assert root is not None, self.exits
        self.root = root
        host, port = whereis(self.root, "webhook", 5).ask(GetAddress(), timeout=5)
        self.url = f"http://{host}:{port}"
        host, port = whereis(self.root, "admin_api", 5).ask(GetAddress(), timeout=5)
        self.admin_url = f"http://{host}:{port}"  # admin routes, signal stories, drills
        self.waiter = SignalWaiter(database_url)

    # --- the operator's CLI --------------------------------------------------------------------

    def cli(self, *args: str) -> dict[str, Any]:
        """Run one CLI command in-process with --json; returns its JSON object."""
        out = io.StringIO()
        with environment(self.env), contextlib.redirect_stdout(out):
            code = runtime.main([*args, "--json"])
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        assert code == 0, (args, out.getvalue())
        return json.loads(lines[-1])

    def new_bot(self, market: str = "SOL-PERP", leverage: str = "5", max_usd: str = "500",
                fund: str = "1000") -> dict[str, Any]:
        """A funded wallet and a bot on it: {wallet, agent, bot_id, secret}."""
        wallet = self.cli("wallet", "create", "--fund", fund)
        bot = self.cli("bot", "create", "--wallet", wallet["wallet"], "--market", market,
                       "--leverage", leverage, "--max-position-usd", max_usd)
        return {"wallet": wallet["wallet"], "agent": wallet["agent_public_key"],
                "bot_id": bot["bot_id"], "secret": bot["webhook_secret"]}

    def published_with_subscribers(self, count: int) -> tuple[dict[str, Any],
                                                               list[dict[str, Any]]]:
        """A published source bot and `count` funded subscriber bots following it."""
        source = self.new_bot(max_usd="300")
        self.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
        followers = []
        for _ in range(count):
            wallet = self.cli("wallet", "create", "--fund", "1000")
            sub = self.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                           source["bot_id"], "--capital-usd", "200")
            followers.append({"wallet": wallet["wallet"], "agent": wallet["agent_public_key"],
                              "bot_id": sub["subscriber_bot_id"]})
        return source, followers

    # --- alerts and outcomes -------------------------------------------------------------------

    def alert(self, bot: Mapping[str, Any], body: str | bytes,
              content_type: str = "text/plain", secret: str | None = None) -> requests.Response:
        """POST a TradingView alert to the bot's webhook."""
        data = body.encode() if isinstance(body, str) else body
        return requests.post(
            f"{self.url}/api/webhook/tradingview/{bot['bot_id']}",
            params={"secret": bot["secret"] if secret is None else secret}, data=data,
            headers={"Content-Type": content_type}, timeout=10)

    def wait(self, *signal_ids: str) -> dict[str, str]:
        """Wait until the signals are final; id -> status."""
        return self.waiter.wait(list(signal_ids), WAIT_S)

    def story(self, signal_id: str) -> dict[str, Any]:
        """GET /api/signals/{id}."""
        response = requests.get(f"{self.admin_url}/api/signals/{signal_id}", timeout=10,
                                headers={"Authorization": f"Bearer {ADMIN}"})
        assert response.status_code == 200, response.text
        return response.json()

    def position(self, agent: str, market_index: int = 0) -> int:
        """The agent's base position at the sandbox (1e9)."""
        return position(self.sandbox.url, agent, market_index)

    def sandbox_stats(self, agent: str) -> dict[str, int]:
        """The sandbox's counters for one authority (swift_orders_received, ...)."""
        return counters(self.sandbox.url).get(agent, {})

    def orders_reaching_sandbox(self, agent: str) -> int:
        """Swift orders plus transactions the sandbox received from this authority (its
        withdrawals aside: tests.venue_view)."""
        return orders_received(self.sandbox.url, agent)

    def faults(self, **faults: Any) -> None:
        """Set sandbox faults (clearing earlier ones first)."""
        response = requests.post(f"{self.sandbox.url}/sandbox/faults",
                                 json={"clear": True, **faults}, timeout=5)
        assert response.status_code == 200, response.text

    def move_oracle(self, factor: float, market_index: int = 0) -> None:
        """Move a market's oracle price by `factor`."""
        url = f"{self.sandbox.url}/sandbox/oracle"
        prices = requests.get(url, params={"market_index": market_index}, timeout=5).json()
        price = prices["prices"][str(market_index)]["price"] / 1_000_000 * factor
        response = requests.post(url, json={"market_index": market_index,
                                            "price": round(price, 4)}, timeout=5)
        assert response.status_code == 200, response.text

    def liquidity(self, mode: str, fraction: float = 0.5, market_index: int = 0) -> None:
        """Set maker liquidity of a market."""
        response = requests.post(f"{self.sandbox.url}/sandbox/liquidity", timeout=5, json={
            "market_index": market_index, "mode": mode, "fraction": fraction})
        assert response.status_code == 200, response.text

    def trades(self, signal_id: str) -> list[dict[str, Any]]:
        """bot_trades rows of one signal."""
        return self.db.fetchall("SELECT * FROM bot_trades WHERE signal_id = %s ORDER BY"
                                " created_at", (signal_id,))

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, keep_sandbox: bool = False) -> None:
        """Stop the tree, the waiter, the pool and (unless kept) the sandbox."""
        runtime.stop_tree(self.root)
        self.waiter.close()
        self._parts.close()
        if not keep_sandbox:
            self.sandbox.stop()
