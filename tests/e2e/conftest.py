"""A fresh stack per test: its own database, sandbox, tree and webhook port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack


@pytest.fixture
def stack(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    overrides = getattr(request, "param", {})
    running = Stack(database_url, tmp_path, **overrides)
    try:
        yield running
    finally:
        running.close()
