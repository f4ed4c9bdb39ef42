"""The demo: one published bot with subscribers, four alerts, and what every bot did.

It assembles a real daemon in a temporary state directory (embedded PostgreSQL, the sandbox
as a child process, the supervision tree, the webhook server), provisions through the same CLI
commands an operator uses, fires TradingView alerts over HTTP, waits for each signal to finish
(PostgreSQL notifications, no polling) and prints a table per alert.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from actors.services import Services
from actors.webhook import GetAddress
from storage.signals import SignalWaiter, signal_story
from supervision import whereis

WAIT_S = 120.0
# JSON templates with {{timenow}}, as TradingView users should write them: two alerts with
# the same text are then two signals, not one delivered twice.
TEMPLATE = ('{{"action": "{action}", "contracts": {contracts}, "position_size": {position},'
            ' "ticker": "SOLUSD", "timenow": "{time}"}}')
ALERTS = (
    ("open long", "buy", 1, 1, None),
    ("close in profit", "sell", 1, 0, 1.04),
    ("open long again", "buy", 1, 1, None),
    ("flip to short", "sell", 2, -1, None),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_environment(base: dict[str, str]) -> dict[str, str]:
    """Settings for a throw-away daemon: its own state dir, free ports, the sandbox venue."""
    state = Path(tempfile.mkdtemp(prefix="quantumvault-demo-"))
    return {**base, "STATE_DIR": str(state), "DATABASE_URL": "", "VENUE": "sandbox",
            "SANDBOX_URL": "", "SANDBOX_PORT": str(_free_port()), "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(_free_port()), "METRICS_PORT": str(_free_port()),
            "ADMIN_PORT": str(_free_port()),
            "ADMIN_TOKEN": secrets.token_urlsafe(24), "SERVER_KEYS": "",
            "AUCTION_DURATION_SLOTS": "20", "LOG_LEVEL": base.get("LOG_LEVEL", "warning")}


class Tour:
    """The demo's steps, on an assembled daemon."""

    def __init__(self, services: Services, cli_main: Callable[[list[str]], int]) -> None:
        self.services = services
        self._cli_main = cli_main
        assert services.root is not None
        host, port = whereis(services.root, "webhook", 10).ask(GetAddress(), timeout=10)
        self.url = f"http://{host}:{port}"
        self.sandbox = services.profile.swift_base_url.rstrip("/")

    def cli(self, *args: str) -> dict[str, Any]:
        """One operator command, as JSON."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = self._cli_main([*args, "--json"])
        if code != 0:
            raise RuntimeError(f"`quantumvault {' '.join(args)}` failed: {out.getvalue()}")
        return json.loads(out.getvalue().strip().splitlines()[-1])

    def provision(self, subscribers: int) -> tuple[dict[str, str], list[str]]:
        """A creator's published bot and `subscribers` subscriber bots."""
        creator = self.cli("wallet", "create", "--fund", "2000")
        bot = self.cli("bot", "create", "--wallet", creator["wallet"], "--market", "SOL-PERP",
                       "--leverage", "5", "--max-position-usd", "600", "--name", "demo-source")
        self.cli("bot", "publish", bot["bot_id"], "--profit-share-percent", "10")
        followers = []
        for n in range(subscribers):
            wallet = self.cli("wallet", "create", "--fund", str(500 + 250 * n))
            sub = self.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                           bot["bot_id"], "--capital-usd", str(200 + 100 * n))
            followers.append(sub["subscriber_bot_id"])
        return {"bot_id": bot["bot_id"], "secret": bot["webhook_secret"]}, followers

    def move_oracle(self, factor: float) -> None:
        """Move SOL's oracle price by `factor` (the market moves in our favour)."""
        prices = requests.get(f"{self.sandbox}/sandbox/oracle", timeout=5,
                              params={"market_index": 0}).json()["prices"]
        price = prices["0"]["price"] / 1_000_000 * factor
        requests.post(f"{self.sandbox}/sandbox/oracle", timeout=5,
                      json={"market_index": 0, "price": round(price, 4)}).raise_for_status()

    def alert(self, source: dict[str, str], body: str) -> str:
        """POST one alert; returns its signal id."""
        answer = requests.post(f"{self.url}/api/webhook/tradingview/{source['bot_id']}",
                               params={"secret": source["secret"]}, data=body.encode(),
                               headers={"Content-Type": "application/json"}, timeout=10)
        answer.raise_for_status()
        return answer.json()["signal_id"]

    def report(self, signal_id: str, names: dict[str, str]) -> list[str]:
        """One line per bot: its orders (method, side, fill) and its latency."""
        story = signal_story(self.services.db, signal_id)
        assert story is not None
        received = datetime.fromisoformat(story["received_at"])
        lines = []
        for signal in (story, *story["subscribers"]):
            orders = "; ".join(
                f"{t['execution_method']} {t['side']} "
                f"{_num(t['filled_size'])} @ {_num(t['price'])} ({t['status']})"
                for t in signal["trades"]) or (signal["status_reason"] or "no order")
            lines.append(f"  {names[signal['trading_bot_id']]:<13} {signal['status']:<8} "
                         f"{_ms_since(received, signal['processed_at']):>7.0f} ms  {orders}")
        return lines


def _num(value: str | None) -> str:
    return "-" if value is None else f"{Decimal(value).normalize():f}"


def _ms_since(start: datetime, end: str | None) -> float:
    """Milliseconds from the alert's arrival to a signal's end (0 while it runs)."""
    return 0.0 if end is None else (datetime.fromisoformat(end) - start).total_seconds() * 1000


def run_tour(services: Services, cli_main: Callable[[list[str]], int], subscribers: int,
             out: Callable[[str], None]) -> int:
    """Provision, fire the alerts, print what happened; 0 when every signal finished."""
    tour = Tour(services, cli_main)
    out("provisioning a creator, a published SOL-PERP bot and "
        f"{subscribers} subscribers through the CLI ...")
    source, followers = tour.provision(subscribers)
    names = {source["bot_id"]: "source"} | {b: f"subscriber {i + 1}"
                                            for i, b in enumerate(followers)}
    waiter = SignalWaiter(services.db.dsn)
    try:
        for title, action, contracts, position, move in ALERTS:
            body = TEMPLATE.format(action=action, contracts=contracts, position=position,
                                   time=datetime.now(UTC).isoformat(timespec="milliseconds"))
            if move:
                tour.move_oracle(move)
                out(f"(SOL oracle moved by {move - 1:+.0%})")
            signal_id = tour.alert(source, body)
            waiter.wait([signal_id], WAIT_S)
            story = signal_story(services.db, signal_id)
            assert story is not None
            waiter.wait([copy["id"] for copy in story["subscribers"]], WAIT_S)
            out(f"\nalert: {title!r}  ({action} {contracts}, new strategy position {position})")
            out(f"  {'bot':<13} {'signal':<8} {'latency':>10}  orders")
            for line in tour.report(signal_id, names):
                out(line)
    finally:
        waiter.close()
    out(f"\n(the demo's database and logs stay in {services.settings.state_dir})")
    return 0
