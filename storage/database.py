"""PostgreSQL access for greenlets: a bounded pool, one connection per greenlet, timeouts.

psycopg2 blocks in C unless it is given a wait callback; psycogreen's gevent callback makes every
query yield to the hub, so a slow query never freezes the other actors of the process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import gevent
import psycopg2
import psycopg2.extensions
from gevent.lock import BoundedSemaphore
from psycogreen.gevent import patch_psycopg

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]

patch_psycopg()


class PoolTimeout(Exception):
    """No connection became free within the acquire timeout."""


class Database:
    """A bounded pool of psycopg2 connections shared by the greenlets of one process."""

    def __init__(
        self,
        dsn: str,
        size: int = 10,
        statement_timeout_ms: int = 10_000,
        connect_timeout_s: int = 5,
        acquire_timeout_s: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_timeout_s = connect_timeout_s
        self._acquire_timeout_s = acquire_timeout_s
        self._slots = BoundedSemaphore(size)
        self._idle: list[psycopg2.extensions.connection] = []
        self._held: dict[int, psycopg2.extensions.connection] = {}
        self._closed = False

    @property
    def dsn(self) -> str:
        """The connection string (for a listener that needs its own connection)."""
        return self._dsn

    def _connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            self._dsn,
            connect_timeout=self._connect_timeout_s,
            options=f"-c statement_timeout={self._statement_timeout_ms}",
            application_name="quantumvault",
        )

    @contextlib.contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg2.extensions.connection]:
        """Check out this greenlet's connection; a nested use gets the same one.

        The block is one transaction: it commits on success and rolls back on error. A
        connection that broke (closed, or an OperationalError/InterfaceError) is discarded.
        With `autocommit` (one statement outside any transaction of the caller) there is no
        BEGIN and no COMMIT: one round trip instead of three.
        """
        me = id(gevent.getcurrent())
        held = self._held.get(me)
        if held is not None:
            yield held
            return
        if self._closed:
            raise PoolTimeout("database pool is closed")
        if not self._slots.acquire(timeout=self._acquire_timeout_s):
            raise PoolTimeout(f"no database connection free within {self._acquire_timeout_s}s")
        conn: psycopg2.extensions.connection | None = None
        broken = False
        try:
            conn = self._idle.pop() if self._idle else self._connect()
            if conn.autocommit != autocommit:
                conn.autocommit = autocommit
            self._held[me] = conn
            try:
                yield conn
                conn.commit()
            except Exception as exc:
                broken = isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
                if not broken and not conn.closed:
                    try:
                        conn.rollback()
                    except psycopg2.Error:
                        broken = True
                raise
            except BaseException:
                broken = True  # interrupted mid-query (timeout, kill): its state is unknown
                raise
        finally:
            self._held.pop(me, None)
            if conn is not None:
                if broken or conn.closed or self._closed:
                    with contextlib.suppress(Exception):
                        conn.close()
                else:
                    self._idle.append(conn)
            self._slots.release()

    def fetchall(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts (built from plain tuples: psycopg2's
        RealDictCursor costs about twice the CPU per row)."""
        with self.connection(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            if not cur.description:
                return []
            names = [column.name for column in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def fetchone(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        """Run a query and return its first row as a dict, or None."""
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement and return the number of rows it touched."""
        with self.connection(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the server answers `SELECT 1` within `timeout_s`."""
        try:
            with gevent.Timeout(timeout_s):
                return self.fetchone("SELECT 1 AS ok") == {"ok": 1}
        except (gevent.Timeout, psycopg2.Error, PoolTimeout):
            return False

    def close(self) -> None:
        """Close idle connections; connections in use close when they come back."""
        self._closed = True
        while self._idle:
            with contextlib.suppress(Exception):
                self._idle.pop().close()


def max_connections(db: Database) -> int:
    """The server's connection limit, which the worker processes' pools must fit under."""
    row = db.fetchone("SELECT current_setting('max_connections')::int AS n")
    assert row is not None
    return int(row["n"])
