"""Test bootstrap: patch gevent first, exactly as runtime.py does, so actors run on greenlets."""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402 - imports after the patch
import os
from collections.abc import Iterator

import pytest

from storage.database import Database
from storage.migrations import migrate
from tests import pg

# A daemon a test starts is one process (WORKERS=0: its intake executes the bots) unless the
# test asks for worker processes (tests/test_daemon_workers.py does): a node of several
# processes per test would double the suite's time for no more coverage.
os.environ.setdefault("WORKERS", "0")


@pytest.fixture(scope="session", autouse=True)
def _embedded_postgres_lifecycle() -> Iterator[None]:
    yield
    pg.stop_server()


@pytest.fixture
def database_url() -> str:
    """URI of a new, empty database on the session's embedded PostgreSQL."""
    return pg.fresh_database()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database behind a pool, closed after the test."""
    database = Database(database_url, size=8)
    migrate(database)
    yield database
    database.close()
