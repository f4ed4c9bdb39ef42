"""FlagsActor through CurrentFlags on the real database: stored values (runtime_flags) override
the environment from its first answer, a change reaches the running actor by NOTIFY without a
restart, a value the setting would refuse is ignored, and a failed read keeps the last values."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from psycopg2.extras import Json

from actors.flags import FlagsActor
from actors.messages import CurrentFlags
from actors.services import Services
from config import load_settings
from sandbox.server import SandboxServer
from storage.database import Database
from storage.flags import reset_flag, set_flag, stored_flags
from supervision import request
from tests.actors.conftest import ASK_S, running
from tests.daemon import until
from trading.routing import LIVE_FLAGS, SwiftFlags


@pytest.fixture
def by(actor_db: Database) -> Iterator[str]:
    """Who changes flags in this test; its stored flags and change log rows removed after."""
    assert stored_flags(actor_db) == {}  # the session's other tests store no live flag
    who = f"flags-test-{uuid.uuid4().hex}"
    try:
        yield who
    finally:
        actor_db.execute("DELETE FROM runtime_flags WHERE key = ANY(%s)", (list(LIVE_FLAGS),))
        actor_db.execute("DELETE FROM runtime_flag_changes WHERE changed_by = %s", (who,))


def own(services: Services, env: dict[str, str], db: Database | None = None) -> Services:
    """A copy of the shared Services with the environment `env` (and maybe its own pool)."""
    return dataclasses.replace(services, settings=load_settings(env), db=db or services.db,
                               root=None, resolved={})


def flags_of(ref: pykka.ActorRef[Any]) -> SwiftFlags:
    flags: SwiftFlags = request(ref, CurrentFlags(), ASK_S)
    return flags



def test_stored_values_override_the_environment_from_the_first_answer(
        services: Services, by: str) -> None:
    """A stored rollback (e.g. rollout 0) must hold from the first order after a restart."""
    set_flag(services.db, "SWIFT_ROLLOUT_PERCENT", 0, by, "rollback")
    set_flag(services.db, "SWIFT_SUPPORTED_MARKETS", ("SOL-PERP",), by)
    env = {"SWIFT_ROLLOUT_PERCENT": "10", "SWIFT_CRITICAL_ORDERS_LEGACY": "true"}
    with running(FlagsActor.start(services=own(services, env))) as ref:
        first = flags_of(ref)  # no waiting: the stored values are read before any answer
    assert first == SwiftFlags(enabled=True, rollout_percent=0, critical_orders_legacy=True,
                               allowed_markets=("SOL-PERP",), fallback_enabled=True,
                               retry_with_swift=True)


def test_a_change_reaches_the_running_actor_and_a_reset_restores_the_environment(
        services: Services, sandbox: SandboxServer, by: str) -> None:
    """`flags set`/`flags reset` must reach the next order without restarting the daemon."""
    with running(FlagsActor.start(services=own(services, {}))) as ref:
        assert flags_of(ref) == SwiftFlags()
        set_flag(services.db, "SWIFT_ENABLED", False, by, "drill")
        until(sandbox, lambda: not flags_of(ref).enabled, "SWIFT_ENABLED=false applied")
        assert flags_of(ref) == SwiftFlags(enabled=False)
        set_flag(services.db, "SWIFT_SUPPORTED_MARKETS", ("SOL-PERP", "BTC-PERP"), by)
        until(sandbox, lambda: flags_of(ref).allowed_markets != (), "the allowlist applied")
        assert flags_of(ref) == SwiftFlags(enabled=False, allowed_markets=("SOL-PERP", "BTC-PERP"))
        assert reset_flag(services.db, "SWIFT_ENABLED", by)
        until(sandbox, lambda: flags_of(ref).enabled, "SWIFT_ENABLED back to the environment's")
        assert flags_of(ref) == SwiftFlags(allowed_markets=("SOL-PERP", "BTC-PERP"))
        assert ref.is_alive()  # the same actor answered throughout: no restart


def test_a_stored_value_the_setting_would_refuse_is_ignored(
        services: Services, by: str) -> None:
    """A row written by hand must never give a flag a value the environment would refuse."""
    rows = [("SWIFT_ENABLED", "yes"), ("SWIFT_ROLLOUT_PERCENT", 150),
            ("SWIFT_SUPPORTED_MARKETS", ["sol-perp"]), ("SWIFT_RETRY_WITH_SWIFT", 0),
            ("SWIFT_FALLBACK_ENABLED", False)]  # the last one is valid
    for key, value in rows:
        services.db.execute("INSERT INTO runtime_flags (key, value, updated_by)"
                            " VALUES (%s, %s, %s)", (key, Json(value), by))
    env = {"SWIFT_ROLLOUT_PERCENT": "40"}
    with running(FlagsActor.start(services=own(services, env))) as ref:
        assert flags_of(ref) == SwiftFlags(rollout_percent=40, fallback_enabled=False)


def test_a_failed_read_keeps_the_last_values(
        services: Services, sandbox: SandboxServer, by: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """A database hiccup must not silently undo a rollback by reverting to the environment."""
    pool = Database(services.db.dsn, size=2)  # the actor's own pool, closed to fail its reads
    caplog.set_level(logging.ERROR, logger="actors.flags")

    def failed_reads() -> int:
        return sum("could not read the live flags" in r.getMessage() for r in caplog.records)

    try:
        with running(FlagsActor.start(services=own(services, {}, pool))) as ref:
            set_flag(services.db, "SWIFT_ROLLOUT_PERCENT", 5, by, "rollback")
            until(sandbox, lambda: flags_of(ref).rollout_percent == 5, "rollout 5 applied")
            assert failed_reads() == 0
            pool.close()  # the actor's reads fail from now on; its listener still hears
            set_flag(services.db, "SWIFT_CRITICAL_ORDERS_LEGACY", True, by)
            until(sandbox, lambda: failed_reads() > 0, "the read after the NOTIFY failed")
            assert flags_of(ref) == SwiftFlags(rollout_percent=5)
            assert ref.is_alive()
    finally:
        pool.close()
