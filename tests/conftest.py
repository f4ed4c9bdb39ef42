"""Test bootstrap: patch gevent first, exactly as runtime.py does, so actors run on greenlets."""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402 - imports after the patch
from collections.abc import Iterator

import pytest

from storage.database import Database
from storage.migrations import migrate
from tests import pg


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
