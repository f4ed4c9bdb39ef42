"""Fixtures: an in-process sandbox on 127.0.0.1:0 with a manually stepped slot clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.server import SandboxServer


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A started sandbox (seed 7, manual slots) stopped after the test."""
    server = SandboxServer("127.0.0.1", 0, seed=7, slot_ms=0, genesis_ts=1_800_000_000.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
