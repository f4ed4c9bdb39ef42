"""HealthMonitor through its messages (GetHealth) against the real sandbox and database, with
the probes the daemon gives it (actors.tree.swift_probe, rpc_probe): Swift /health fed to a
SwiftGateway, RPC reachability in the monitor's state, and probes shared through the database
(one holder of the HEALTH_PROBES duty asks the venue, the others read venue_health)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka

from actors.health_monitor import HealthMonitor, ProbeSpec
from actors.legacy_executor import LegacyExecutor
from actors.messages import GetHealth, IsHealthy
from actors.services import NamedActor, ProcessRole, Services
from actors.swift_gateway import SwiftGateway
from actors.tree import rpc_probe, swift_probe
from actors.venue_state import VenueStateClient
from config import load_settings
from sandbox.server import SandboxServer
from storage.bot_leases import new_holder_id
from storage.duty_leases import HEALTH_PROBES, release
from supervision import ChildSpec, Supervisor, Whereis, request
from tests.actors.conftest import ASK_S, Faults, running
from venue.auction import AuctionConfig
from venue.swift_client import SwiftClient

WAIT_S = 15.0  # how long a test waits for a probe's outcome to show
FAST = {"HEALTH_INTERVAL_MS": "500"}  # a probe every 0.5 s, shared results stale after 1.5 s
# one probe per monitor start (the next is a minute away): probes can be counted
ONE_PROBE = {"HEALTH_INTERVAL_MS": "60000", "SWIFT_HEALTH_CHECK_INTERVAL_MS": "60000",
             "SWIFT_FAILURES_UNHEALTHY": "2"}
Record = dict[str, Any]


@contextlib.contextmanager
def process(services: Services, env: dict[str, str], children: tuple[str, ...] = (),
            role: ProcessRole = ProcessRole.ALL) -> Iterator[Services]:
    """Another process on the session's database and sandbox: its settings, its own holder id
    and a tree of its own with `children`; its duties released when it stops (as the lease
    keeper does)."""
    mine = dataclasses.replace(services, settings=load_settings(env), holder=new_holder_id(),
                               role=role, root=None, resolved={})
    specs = {
        "legacy_executor": ChildSpec("legacy_executor", LegacyExecutor,
                                     kwargs={"profile": mine.profile}),
        "swift_gateway": ChildSpec("swift_gateway", SwiftGateway, kwargs={
            "client": SwiftClient(mine.profile.swift_base_url), "db": mine.db,
            "venue": VenueStateClient(services), "tracker": NamedActor(services, "fill_tracker"),
            "auction": AuctionConfig(-10, 10, 10),
            "failures_unhealthy": mine.settings.swift_failures_unhealthy}),
    }
    try:
        with running(Supervisor.start(children=[specs[name] for name in children])) as root:
            mine.root = root
            yield mine
    finally:
        release(mine.db, mine.holder)


def monitor(proc: Services, probes: dict[str, ProbeSpec]) -> Any:
    """A HealthMonitor of `proc` with these probes, at its health interval."""
    interval_s = proc.settings.health_interval_ms / 1000
    return running(HealthMonitor.start(probes=probes, interval_s=interval_s))


def until(sandbox: SandboxServer, check: Callable[[], Any], what: str) -> Any:
    """`check()` again at every sandbox slot until it answers something truthy."""
    clock = sandbox.exchange.clock
    deadline = time.monotonic() + WAIT_S
    while not (answer := check()):
        assert time.monotonic() < deadline, f"not within {WAIT_S:g} s: {what}"
        clock.wait_for_slot(clock.slot + 1, WAIT_S)
    return answer


def probed(ref: pykka.ActorRef[Any], name: str, ok: bool | None = None) -> Record | None:
    """The monitor's last record of probe `name` (if it says `ok`, when given)."""
    record = request(ref, GetHealth(), ASK_S).get(name)
    return record if record is not None and ok in (None, record["ok"]) else None


def duty_holder(proc: Services) -> tuple[str, int] | None:
    """Who holds the HEALTH_PROBES duty now, and its epoch."""
    row = proc.db.fetchone("SELECT holder, epoch FROM duty_leases WHERE duty = %s"
                           " AND expires_at > now()", (HEALTH_PROBES,))
    return None if row is None else (row["holder"], row["epoch"])


def published(proc: Services, probe: str) -> Record | None:
    """The shared venue_health row of `probe`."""
    return proc.db.fetchone("SELECT ok, detail, probed_by, probed_at FROM venue_health"
                            " WHERE probe = %s", (probe,))


def test_failed_swift_probes_make_the_gateway_unhealthy_and_a_good_one_heals_it(
        services: Services, sandbox: SandboxServer, faults: Faults) -> None:
    """Swift's health reaches the order path only through the monitor feeding the gateway: the
    configured count of failed probes (2) marks Swift unhealthy, one alone does not, and the
    next good probe makes it usable again. Each monitor start runs exactly one probe."""
    with process(services, ONE_PROBE, ("swift_gateway",)) as proc:
        gateway = request(proc.root, Whereis("swift_gateway"), ASK_S)

        def probe_once() -> Record:
            client = SwiftClient(proc.profile.swift_base_url)
            with monitor(proc, {"swift": swift_probe(proc, client)}) as ref:
                record = until(sandbox, lambda: probed(ref, "swift"), "a Swift probe")
            assert duty_holder(proc) == (proc.holder, duty_holder(proc)[1])  # it asked Swift
            return record

        assert request(gateway, IsHealthy(), ASK_S)
        faults.set(health_412=True)
        first = probe_once()
        assert not first["ok"] and first["error"].startswith("/health: 412")
        assert request(gateway, IsHealthy(), ASK_S)  # one failed probe of two
        assert not probe_once()["ok"]
        assert not request(gateway, IsHealthy(), ASK_S)
        faults.clear()
        good = probe_once()
        assert (good["ok"], good["error"]) == (True, None)
        assert request(gateway, IsHealthy(), ASK_S)
        assert published(proc, "swift")["probed_by"] == proc.holder


def test_unreachable_rpc_is_a_warning_in_the_state_until_it_answers_again(
        services: Services, sandbox: SandboxServer, faults: Faults) -> None:
    """With both RPC endpoints refusing, the periodic getSlot probe records the dependency as
    down with a secret-free reason (what /readyz shows), and as up once they answer again."""
    with process(services, FAST, ("legacy_executor",)) as proc, \
            monitor(proc, {"rpc": rpc_probe(proc)}) as ref:
        first = until(sandbox, lambda: probed(ref, "rpc", ok=True), "a good RPC probe")
        assert first["error"] is None and first["last_ok_at"] is not None
        faults.set(rpc_primary_down=True, rpc_backup_down=True)
        down = until(sandbox, lambda: probed(ref, "rpc", ok=False), "RPC reported down")
        assert down["error"] in ("getSlot failed: rpc_unreachable",
                                 "no RPC endpoint answered getSlot within 0.5 s")
        assert down["last_ok_at"] >= first["last_ok_at"]  # kept from the last good probe
        faults.clear()
        up = until(sandbox, lambda: probed(ref, "rpc", ok=True), "RPC reported up again")
        assert up["error"] is None and up["last_ok_at"] >= down["checked_at"]


def test_only_the_duty_holder_probes_the_venue_and_another_takes_over_when_it_stops(
        services: Services, sandbox: SandboxServer) -> None:
    """Two processes on one database: the venue sees one prober (the lease never moves while
    it runs), the other reports its shared result; when the prober dies (lease not released),
    the other takes the duty over once the lease runs out and probes itself."""
    with process(services, FAST, ("legacy_executor",)) as a, \
            process(services, FAST, ("legacy_executor",)) as b, \
            monitor(a, {"rpc": rpc_probe(a)}) as first, \
            monitor(b, {"rpc": rpc_probe(b)}) as second:
        held = until(sandbox, lambda: (d := duty_holder(a)) and d[0] == a.holder and d,
                     "the first process holding the probe duty")
        until(sandbox, lambda: probed(second, "rpc", ok=True), "the reader's shared result")
        seen = until(sandbox, lambda: published(a, "rpc"), "a shared RPC result")
        for _ in range(3):  # three more results published while both run: all by the holder
            seen = until(sandbox, lambda s=seen: (r := published(a, "rpc"))
                         and r["probed_at"] > s["probed_at"] and r, "a newer shared result")
            assert seen["probed_by"] == a.holder
        assert duty_holder(a) == held  # same holder, same epoch: b never took it in between

        first.stop(block=True, timeout=ASK_S)  # dies holding the lease
        assert until(sandbox, lambda: duty_holder(b), "a holder") == (b.holder, held[1] + 1)
        until(sandbox, lambda: (r := published(b, "rpc"))["probed_by"] == b.holder,
              "a result published by the second process")
        assert probed(second, "rpc", ok=True) is not None


def test_a_reader_reports_the_venue_down_when_nobody_probes(
        services: Services, sandbox: SandboxServer) -> None:
    """An intake process never asks the venue; with no prober running, a shared result older
    than three intervals is a failure, said as such, not a stale "up"."""
    with process(services, FAST, role=ProcessRole.INTAKE) as reader, \
            monitor(reader, {"rpc": rpc_probe(reader)}) as ref:
        stale = until(sandbox, lambda: probed(ref, "rpc", ok=False), "a stale result reported")
        assert stale["error"] == "no process has probed rpc for 1.5 s"
        assert (duty_holder(reader) or ("",))[0] != reader.holder
        assert (published(reader, "rpc") or {}).get("probed_by") != reader.holder
