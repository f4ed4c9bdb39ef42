"""The greenlet-aware pool: no freezing, bounded, per-greenlet, broken connections discarded."""

from __future__ import annotations

import time

import gevent
import psycopg2
import pytest
from gevent.event import Event

from storage.database import Database, PoolTimeout
from supervision import SupervisedActor


class Pinger(SupervisedActor):
    """Answers pings: proves the process keeps running while queries wait."""

    def on_receive(self, message: object) -> object:
        return message


def test_queries_do_not_freeze_the_process(database_url: str) -> None:
    db = Database(database_url, size=51)
    _warm(db, 51)  # connections exist, so each sleeper sends its query at its first run
    pinger = Pinger.start()
    try:
        sleepers = [gevent.spawn(db.execute, "SELECT pg_sleep(0.2)") for _ in range(50)]
        gevent.sleep(0)  # one turn of the hub: every sleeper sends its query and waits
        started = time.perf_counter()
        actor_answer = pinger.ask("ping", timeout=1.0)
        actor_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        db_answer = db.fetchone("SELECT 1 AS one")
        db_ms = (time.perf_counter() - started) * 1000
        still_sleeping = sum(not s.ready() for s in sleepers)
        gevent.joinall(sleepers, timeout=10, raise_error=True)
    finally:
        pinger.stop()
        db.close()
    assert actor_answer == "ping" and db_answer == {"one": 1}
    assert still_sleeping == 50, "the pings must be answered while the 50 queries still run"
    assert actor_ms < 50 and db_ms < 50, (actor_ms, db_ms)


def _warm(db: Database, count: int) -> None:
    """Open `count` pooled connections at once (each greenlet holds one until all have one)."""
    everyone_in = Event()
    inside: list[int] = []

    def hold() -> None:
        with db.connection():
            inside.append(1)
            if len(inside) == count:
                everyone_in.set()
            everyone_in.wait(timeout=10)

    gevent.joinall([gevent.spawn(hold) for _ in range(count)], timeout=10, raise_error=True)
    assert everyone_in.is_set()


def test_a_greenlet_reuses_its_connection_and_others_get_their_own(db: Database) -> None:
    with db.connection() as outer, db.connection() as inner:
        assert outer is inner
        other = gevent.spawn(lambda: _backend_pid(db)).get(timeout=5)
        with outer.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            assert cur.fetchone()[0] != other


def _backend_pid(db: Database) -> int:
    row = db.fetchone("SELECT pg_backend_pid() AS pid")
    assert row is not None
    return row["pid"]


def test_the_pool_is_bounded_and_acquiring_times_out(database_url: str) -> None:
    db = Database(database_url, size=2, acquire_timeout_s=0.1)
    release, holding = Event(), []

    def hold() -> None:
        with db.connection():
            holding.append(1)
            release.wait(timeout=5)

    holders = [gevent.spawn(hold) for _ in range(2)]
    try:
        while len(holding) < 2:
            gevent.sleep(0)
        with pytest.raises(PoolTimeout):
            db.fetchone("SELECT 1")
    finally:
        release.set()
        gevent.joinall(holders, timeout=5)
    assert db.fetchone("SELECT 1 AS one") == {"one": 1}
    db.close()


def test_a_broken_connection_is_discarded(database_url: str) -> None:
    db = Database(database_url, size=1)
    victim = _backend_pid(db)
    admin = Database(database_url, size=1)
    admin.execute("SELECT pg_terminate_backend(%s)", (victim,))
    with pytest.raises(psycopg2.OperationalError):
        db.fetchone("SELECT 1")
    assert _backend_pid(db) != victim  # a new connection replaced the dead one
    db.close()
    admin.close()


def test_statement_timeout_cancels_a_slow_query(database_url: str) -> None:
    db = Database(database_url, size=1, statement_timeout_ms=100)
    with pytest.raises(psycopg2.errors.QueryCanceled):
        db.execute("SELECT pg_sleep(5)")
    assert db.fetchone("SELECT 1 AS one") == {"one": 1}
    db.close()


def test_ping_reports_an_unreachable_server() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none", size=1)
    assert db.ping(timeout_s=2.0) is False
