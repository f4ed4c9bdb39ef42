"""Waiting on the database without polling: LISTEN on a channel, re-check when NOTIFY arrives.

Writers NOTIFY a channel when a row reaches a new state; a waiter re-runs its check each time it
is woken. The check runs first too, so a state reached before the wait began is not missed, and
notifications that arrive while a check runs (psycopg2 buffers them) trigger one more check
instead of a sleep until the timeout.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras

T = TypeVar("T")

log = logging.getLogger(__name__)

RECONNECT_S = 1.0


class Listener:
    """A dedicated autocommit connection listening on `channels`."""

    def __init__(self, dsn: str, *channels: str) -> None:
        self._conn = psycopg2.connect(dsn, connect_timeout=5)
        self._conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with self._conn.cursor() as cur:
            for channel in channels:
                cur.execute(f"LISTEN {channel}")

    def wait_until(self, check: Callable[[Any], T | None], timeout_s: float, what: str) -> T:
        """Run `check(cursor)` until it returns something other than None; TimeoutError after
        `timeout_s` naming `what`."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                result = check(cur)
            if result is not None:
                return result
            if self._conn.notifies:
                self._conn.notifies.clear()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{what} not reached in {timeout_s}s")
            select.select([self._conn], [], [], remaining)
            self._conn.poll()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one query on the listening connection (notifications stay buffered)."""
        with self._conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()]

    def next_payloads(self, timeout_s: float) -> list[str]:
        """The payloads of notifications that arrive within `timeout_s` (maybe none)."""
        if not self._conn.notifies:
            select.select([self._conn], [], [], timeout_s)
            self._conn.poll()
        payloads = [n.payload for n in self._conn.notifies]
        self._conn.notifies.clear()
        return payloads

    def close(self) -> None:
        """Close the listening connection."""
        self._conn.close()


def listen_forever(dsn: str, channels: Sequence[str], on_payloads: Callable[[list[str]], None],
                   on_connected: Callable[[], None], wait_s: float,
                   reconnect_s: float = RECONNECT_S) -> None:
    """Deliver notifications until killed, across database outages.

    A lost or refused connection is one warning line and a new attempt every `reconnect_s`
    (never a crash: an actor that crashed on every attempt would exhaust its supervisor's
    restart intensity within a failover). `on_connected()` runs after every (re)connect, so
    the caller reads again what it may have missed meanwhile.
    """
    down = False
    while True:
        try:
            listener = Listener(dsn, *channels)
        except psycopg2.Error as exc:
            if not down:
                log.warning("cannot listen on %s: %s; trying again every %g s",
                            ",".join(channels), type(exc).__name__, reconnect_s)
                down = True
            time.sleep(reconnect_s)
            continue
        try:
            if down:
                log.info("listening on %s again", ",".join(channels))
                down = False
            on_connected()
            while True:
                payloads = listener.next_payloads(wait_s)
                if payloads:
                    on_payloads(payloads)
        except psycopg2.Error as exc:
            log.warning("lost the connection listening on %s: %s", ",".join(channels),
                        type(exc).__name__)
            down = True
        finally:
            listener.close()
