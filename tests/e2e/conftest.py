"""A fresh stack per test: its own database, sandbox, tree and webhook port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from tests.e2e.stack import Stack


@pytest.fixture
def stack(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Stack (100 ms slots); a param is its settings overrides."""
    with Stack(database_url, tmp_path, **getattr(request, "param", {})) as running:
        yield running


@pytest.fixture
def slow_stack(database_url: str, tmp_path: Path,
               request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Stack at Solana's pace: slots of 400 ms (as the daemon's venue profile says), 10-slot
    auctions; a param is its settings overrides."""
    sandbox = SandboxServer("127.0.0.1", 0, seed=21, slot_ms=400)
    sandbox.start()
    with Stack(database_url, tmp_path, sandbox=sandbox, **getattr(request, "param", {})) as running:
        yield running
