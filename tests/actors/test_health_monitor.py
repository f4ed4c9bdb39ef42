"""HealthMonitor through its messages (GetHealth) against the real sandbox and database, with
the probes the daemon gives it (actors.tree.swift_probe, rpc_probe): Swift /health fed to a
SwiftGateway, RPC reachability in the monitor's state, and probes shared through the database
(one holder of the HEALTH_PROBES duty asks the venue, the others read venue_health)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
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
from tests.daemon import until
from venue.auction import AuctionConfig
from venue.swift_client import SwiftClient

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


def monitor(proc: Services, probes: dict[str, ProbeSpec]
            ) -> contextlib.AbstractContextManager[pykka.ActorRef[Any]]:
    """A HealthMonitor of `proc` with these probes, at its health interval."""
    interval_s = proc.settings.health_interval_ms / 1000
    return running(HealthMonitor.start(probes=probes, interval_s=interval_s))



def probed(ref: pykka.ActorRef[Any], name: str, ok: bool | None = None) -> Record | None:
    """The monitor's last record of probe `name` (if it says `ok`, when given)."""
    record = request(ref, GetHealth(), ASK_S).get(name)
    return record if record is not None and ok in (None, record["ok"]) else None


def duty_holder(proc: Services) -> tuple[str, int] | None:
    """Who holds the HEALTH_PROBES duty now, and its epoch."""
    row = proc.db.fetchone("SELECT holder, epoch FROM duty_leases WHERE duty = %s"
                           " AND expires_at > now()", (HEALTH_PROBES,))
    return None if row is None else (row["holder"], row["epoch"])


def published(proc: Services, probe: str) -> Record:
    """The shared venue_health row of `probe` ({} if none)."""
    return proc.db.fetchone("SELECT ok, detail, probed_by, probed_at FROM venue_health"
                            " WHERE probe = %s", (probe,)) or {}


def newer(proc: Services, probe: str, than: Record) -> Record | None:
    """The shared row of `probe` if it was published after `than`."""
    row = published(proc, probe)
    return row if row and row["probed_at"] > than["probed_at"] else None


def test_failed_swift_probes_make_the_gateway_unhealthy_and_a_good_one_heals_it(
        services: Services, sandbox: SandboxServer, faults: Faults) -> None:
    """Swift health reaches orders only via the monitor: N failed probes gate Swift, 1 heals it."""
    # each monitor start runs exactly one probe (the next is a minute away): they can be counted
    with process(services, ONE_PROBE, ("swift_gateway",)) as proc:
        assert proc.root is not None
        gateway = request(proc.root, Whereis("swift_gateway"), ASK_S)

        def probe_once() -> Record:
            client = SwiftClient(proc.profile.swift_base_url)
            with monitor(proc, {"swift": swift_probe(proc, client)}) as ref:
                record = until(sandbox, lambda: probed(ref, "swift"), "a Swift probe")
            assert (duty_holder(proc) or ("",))[0] == proc.holder  # so it asked Swift itself
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
    """/readyz needs the monitor's state to say RPC is down (secret-free reason), then up again."""
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
    """The venue must see one prober per database, and probing must survive the prober's death."""
    # the first holds the lease and publishes, the second reads; the first dies (no release)
    with process(services, FAST, ("legacy_executor",)) as a, \
            process(services, FAST, ("legacy_executor",)) as b, \
            monitor(a, {"rpc": rpc_probe(a)}) as first:
        held = until(sandbox, lambda: (d := duty_holder(a)) and d[0] == a.holder and d,
                     "the first process holding the probe duty")
        with monitor(b, {"rpc": rpc_probe(b)}) as second:
            until(sandbox, lambda: probed(second, "rpc", ok=True), "the reader's shared result")
            seen = until(sandbox, lambda: published(a, "rpc"), "a shared RPC result")
            for _ in range(3):  # three more results published while both run: by the holder
                seen = until(sandbox, functools.partial(newer, a, "rpc", seen), "a newer result")
                assert seen["probed_by"] == a.holder
            assert duty_holder(a) == held  # same holder, same epoch: b never took it meanwhile

            first.stop(block=True, timeout=ASK_S)  # dies holding the lease
            taken = until(sandbox, lambda: (d := duty_holder(b)) and d[0] == b.holder and d,
                          "the second process holding the probe duty")
            assert taken == (b.holder, held[1] + 1)
            until(sandbox, lambda: published(b, "rpc")["probed_by"] == b.holder,
                  "a result published by the second process")
            assert probed(second, "rpc", ok=True) is not None


def test_a_reader_reports_the_venue_down_when_nobody_probes(
        services: Services, sandbox: SandboxServer) -> None:
    """A reader must not trust a stale shared result: with nobody probing it reports a failure."""
    with process(services, FAST, role=ProcessRole.INTAKE) as reader, \
            monitor(reader, {"rpc": rpc_probe(reader)}) as ref:
        stale = until(sandbox, lambda: probed(ref, "rpc", ok=False), "a stale result reported")
        assert stale["error"] == "no process has probed rpc for 1.5 s"
        assert (duty_holder(reader) or ("",))[0] != reader.holder
        assert published(reader, "rpc").get("probed_by") != reader.holder
