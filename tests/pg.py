"""A shared embedded PostgreSQL for the tests: one server per test session, a database per use."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extensions

from storage.embedded import EmbeddedPostgres

_server: EmbeddedPostgres | None = None
_directory: Path | None = None
_base_uri: str = ""


def server_uri() -> str:
    """The URI of the session's embedded server, started on first use."""
    global _server, _directory, _base_uri
    if _server is None:
        _directory = Path(tempfile.mkdtemp(prefix="qv-test-pg-"))
        _server = EmbeddedPostgres(_directory)
        _base_uri = _server.start()
    return _base_uri


def fresh_database() -> str:
    """Create an empty database on the shared server and return its URI."""
    base = server_uri()
    name = "t_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(base)
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return base.replace("/postgres?", f"/{name}?")


def stop_server() -> None:
    """Stop the shared server and remove its data (end of session: ~1.5 GB a session)."""
    global _server, _directory
    if _server is not None:
        _server.stop()
        _server = None
    if _directory is not None:
        shutil.rmtree(_directory, ignore_errors=True)
        _directory = None
