"""Fixtures: the CLI on a fresh database, and a recording stand-in for the sandbox faucet."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from tests.operator_cli.helpers import Cli, write_key


class Faucet:
    """A tiny HTTP server on 127.0.0.1 that records every faucet request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.received = Event()
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None)

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """Answer like the sandbox faucet and remember the request."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        self.paths.append(environ["PATH_INFO"])
        self.bodies.append(body)
        self.received.set()
        answer = {"authority": body.get("authority"), "user": "U" * 43,
                  "quote_balance": int(float(body.get("quote", 0)) * 1_000_000)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]

    @property
    def url(self) -> str:
        """Base URL, as SANDBOX_URL."""
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def faucet() -> Iterator[Faucet]:
    """A running recording faucet."""
    fake = Faucet()
    fake.server.start()
    yield fake
    fake.server.stop(timeout=2)


@pytest.fixture
def cli(database_url: str, tmp_path: Path, faucet: Faucet) -> Cli:
    """The CLI on this test's database, with one server key k1 and the recording faucet."""
    state = tmp_path / "state"
    state.mkdir()
    key = write_key(tmp_path / "k1.key")
    env = {**os.environ, "DATABASE_URL": database_url, "STATE_DIR": str(state),
           "SERVER_KEYS": f"k1=file:{key}", "SERVER_KEY_CURRENT": "", "VENUE": "sandbox",
           "SANDBOX_URL": faucet.url, "LOG_LEVEL": "debug"}
    return Cli(env, state)
