"""One /metrics for a node of processes: real child processes write their metrics to the node's
directory, and an intake child serves them merged over loopback HTTP, each gauge by its mode;
without PROMETHEUS_MULTIPROC_DIR a process serves its own registry as before."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from httpapi.admin_routes import swift_metrics_summary
from observability import multiprocess
from observability.exporter import start_exporter
from observability.multiprocess import ENV_VAR, mark_dead, node_registry, prepare_dir
from tests.daemon import wait_until
from tests.observability.holder import Holder, hold

ROOT = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S = 30.0

INTAKE = """
from gevent import monkey
monkey.patch_all()
import gevent
from observability.exporter import start_exporter
print(start_exporter("127.0.0.1", 0).server_port, flush=True)
gevent.wait()
"""

# Worker n counts n Swift orders (one traded), holds 10*n bots, and sets one gauge of each mode;
# worker 2 cannot reach the database; only worker 1's gateway considers Swift healthy.
WORKER = """
import sys
from actors.health_monitor import PROBE_LATENCY, PROBE_UP
from observability.node_metrics import BOT_LEASE_RENEWALS, WORKER_BOTS_HELD
from observability.trading_metrics import (RETRY_QUEUE_DEPTH, SWIFT_HEALTHY, SWIFT_ORDERS,
                                           SWIFT_ORDERS_SUCCESS, SWIFT_PRICE_IMPROVEMENT)
n = int(sys.argv[1])
SWIFT_ORDERS.labels(market="SOL-PERP").inc(n)
SWIFT_ORDERS_SUCCESS.labels(market="SOL-PERP").inc()
SWIFT_PRICE_IMPROVEMENT.labels(market="SOL-PERP").observe(-n)
BOT_LEASE_RENEWALS.labels(worker=f"w{n}").inc(n)
WORKER_BOTS_HELD.labels(worker=f"w{n}").set(10 * n)
PROBE_UP.labels(probe="database").set(0 if n == 2 else 1)
PROBE_LATENCY.labels(probe="database").set(n / 10)
RETRY_QUEUE_DEPTH.labels(priority="critical").set(n)
SWIFT_HEALTHY.set(1 if n == 1 else 0)
print("ready", flush=True)
sys.stdin.read()
"""

# The grant gauges' callbacks (as watch_grants sets them); three messages wait behind a blocked
# actor, "more" queues two more, "stop" ends the actor.
COMPUTED = """
from gevent import monkey
monkey.patch_all()
import sys
from gevent.fileobject import FileObject
from observability.process_gauges import start_process_gauges
from observability.trading_metrics import (GRANT_MIN_SECONDS_LEFT_WITH_POSITION,
                                           GRANTS_LAPSED_WITH_POSITION)
from tests.observability.holder import Holder, hold
GRANTS_LAPSED_WITH_POSITION.set_function(lambda: 4.0)
GRANT_MIN_SECONDS_LEFT_WITH_POSITION.set_function(lambda: 600.0)
holder = Holder.start()
release = hold(holder, 3)
start_process_gauges(0.05)
print("ready", flush=True)
for command in FileObject(sys.stdin.fileno(), "r", close=False):
    if command.strip() == "more":
        holder.tell("queued")
        holder.tell("queued")
    elif command.strip() == "stop":
        release.set()
        holder.stop()
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Child:
    """A Python child process of the node: `code` run with the node's metric directory set."""

    def __init__(self, code: str, metrics_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], cwd=ROOT,
            env={**os.environ, ENV_VAR: str(metrics_dir)}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid

    def line(self) -> str:
        """The child's next line of output; the test fails with its stderr if it exited."""
        assert self.proc.stdout is not None
        with gevent.Timeout(LINE_TIMEOUT_S):
            line = self.proc.stdout.readline()
        if not line:
            assert self.proc.stderr is not None
            pytest.fail(f"child exited ({self.proc.wait()}): {self.proc.stderr.read()}")
        return line.strip()

    def send(self, command: str) -> None:
        """One line to the child's standard input."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """End the child and reap it."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.communicate(timeout=LINE_TIMEOUT_S)


@pytest.fixture
def metrics_dir() -> Iterator[Path]:
    """A node's metric directory, removed after the test."""
    with tempfile.TemporaryDirectory(prefix="qv-metrics-") as path:
        yield Path(path)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """The test's child processes, all ended after it."""
    started: list[Child] = []
    yield started
    for child in started:
        child.stop()


@pytest.fixture
def node_env(metrics_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test process reads the node's directory as the intake does (its own metrics stay
    in memory: prometheus_client chose that at import)."""
    monkeypatch.setenv(ENV_VAR, str(metrics_dir))
    return metrics_dir


def scrape(port: int) -> Samples:
    """Every sample of http://127.0.0.1:port/metrics by (name, labels)."""
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def at(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, None when it is not exposed."""
    return samples.get((name, frozenset(labels.items())))


def test_the_intake_serves_every_process_each_gauge_by_its_mode(
        node_env: Path, children: list[Child]) -> None:
    prepare_dir(node_env)
    intake = Child(INTAKE, node_env)
    children.append(intake)
    port = int(intake.line())
    workers = {}
    for n in (1, 2, 3):  # one after the other: worker 3 sets retry_queue_depth last
        workers[n] = Child(WORKER, node_env, str(n))
        children.append(workers[n])
        assert workers[n].line() == "ready"

    samples = scrape(port)
    assert at(samples, "swift_orders_total", market="SOL-PERP") == 6  # counters: summed
    assert at(samples, "swift_price_improvement_bps_count", market="SOL-PERP") == 3
    assert at(samples, "swift_price_improvement_bps_sum", market="SOL-PERP") is None
    assert at(samples, "swift_api_latency_ms_sum") == 0  # positive buckets keep their _sum
    assert {w: at(samples, "worker_bots_held", worker=w) for w in ("w1", "w2", "w3")} == {
        "w1": 10, "w2": 20, "w3": 30}
    assert at(samples, "dependency_up", probe="database") == 0  # min: worker 2 is cut off
    assert at(samples, "dependency_probe_seconds", probe="database") == 0.3  # max
    assert at(samples, "retry_queue_depth", priority="critical") == 3  # the latest reading
    assert at(samples, "swift_healthy") == 1  # max, over processes without a gateway too
    assert not [key for key in samples if "pid" in dict(key[1])]  # every gauge has a mode

    summary = swift_metrics_summary(None)  # the admin route reads the node, not this process
    assert summary["summary"]["totalOrders"] == 6
    assert summary["summary"]["ordersSuccess"] == 3
    assert summary["byMarket"]["SOL-PERP"]["successRate"] == 0.5

    workers[2].stop()
    mark_dead(workers[2].pid)
    samples = scrape(port)
    assert at(samples, "worker_bots_held", worker="w2") is None
    assert at(samples, "dependency_up", probe="database") == 1
    assert at(samples, "dependency_probe_seconds", probe="database") == 0.3
    assert at(samples, "swift_orders_total", market="SOL-PERP") == 6  # a dead worker's counts stay
    assert at(samples, "bot_lease_renewals_total", worker="w2") == 2


def test_a_process_publishes_what_it_computes_at_scrape_time(
        node_env: Path, children: list[Child]) -> None:
    other = Child(WORKER, node_env, "1")  # no grant callbacks: it holds their start values
    children.append(other)
    assert other.line() == "ready"
    child = Child(COMPUTED, node_env)
    children.append(child)
    assert child.line() == "ready"
    node = node_registry()
    assert node.get_sample_value("v3_grants_lapsed_with_position") == 4  # max over 0
    assert node.get_sample_value("v3_grant_min_seconds_left_with_position") == 600  # min, +Inf

    def depth() -> float | None:
        return node.get_sample_value("actor_mailbox_depth", {"actor": "holder"})

    assert depth() == 3  # published once at start, before the first period
    child.send("more")
    wait_until(lambda: depth() == 5, "the two new messages counted", timeout_s=LINE_TIMEOUT_S)
    child.send("stop")
    wait_until(lambda: depth() == 0, "the stopped actor's depth back to 0",
               timeout_s=LINE_TIMEOUT_S)


def test_prepare_dir_removes_the_files_of_earlier_runs(node_env: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    own, stale = f"counter_{os.getpid()}.db", "gauge_livesum_1.db"
    for name in (own, stale, "notes.txt"):
        (node_env / name).write_text("")
    prepare_dir(node_env)  # a process of the node keeps the files it has open
    assert sorted(p.name for p in node_env.iterdir()) == sorted([own, "notes.txt"])
    monkeypatch.delenv(ENV_VAR)
    prepare_dir(node_env / "fresh")  # before the node's variable is set: all of them go
    prepare_dir(node_env)
    assert sorted(p.name for p in node_env.iterdir()) == ["fresh", "notes.txt"]


def test_one_process_serves_its_own_registry_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert not multiprocess.enabled()
    assert node_registry() is REGISTRY
    mark_dead(os.getpid())  # nothing to forget without a node
    holder = Holder.start()
    release = hold(holder, 3)
    server = start_exporter("127.0.0.1", 0)
    try:
        samples = scrape(server.server_port)
    finally:
        server.stop(timeout=2)
        release.set()
        holder.stop()
    assert at(samples, "actor_mailbox_depth", actor="holder") == 3  # the scrape-time collector
    assert at(samples, "process_cpu_seconds_total") is not None  # the default collectors too
