"""The node's arithmetic: which role a process plays, and database pools within the limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.node import MIN_POOL, connections_needed, pool_size, process_role
from actors.services import ProcessRole


def test_run_without_workers_is_one_process_doing_everything() -> None:
    assert process_role("all", 0) is ProcessRole.ALL
    assert process_role("all", 3) is ProcessRole.INTAKE
    assert process_role("worker", 3) is ProcessRole.WORKER
    assert process_role("intake", 0) is ProcessRole.INTAKE
    assert ProcessRole.INTAKE.serves_http and not ProcessRole.INTAKE.executes
    assert ProcessRole.WORKER.executes and not ProcessRole.WORKER.serves_http


@given(configured=st.integers(1, 500), max_connections=st.integers(20, 10_000),
       workers=st.integers(1, 256))
def test_worker_pools_fit_the_server_whenever_the_minimum_does(
        configured: int, max_connections: int, workers: int) -> None:
    size = pool_size(configured, max_connections, workers)
    assert MIN_POOL <= size <= max(configured, MIN_POOL)
    if connections_needed(configured, workers, MIN_POOL) + 10 <= max_connections:
        assert connections_needed(configured, workers, size) + 10 <= max_connections
