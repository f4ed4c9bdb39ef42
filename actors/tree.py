"""The supervision tree of a process, as data: which actors run, in which order, how restarted.

Children start in this order and stop in reverse: the health monitor first (its probes feed the
others), the live flags next (every order asks them), then the owners of shared state (RPC
failover in the legacy executor, the slot clock and account cache in venue_state, open Swift
orders in the fill tracker, Swift health in the gateway), the keeper of this process's bot
leases (nothing claims work before they exist), the bot supervisor (bot actors are added on
demand), the fan-out and the listeners for work announced by others; then the HTTP listeners
(httpapi.listeners, passed in by the runtime) and last the worker pool of a node's intake.
Which of them a process runs depends on its role (actors.services.ProcessRole).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

import pykka

from actors.fanout import FanoutCoordinator
from actors.fill_tracker import FillTracker
from actors.flags import FlagsActor
from actors.health_monitor import HealthMonitor, ProbeResult, ProbeSkipped, ProbeSpec
from actors.intake_listener import IntakeListener
from actors.journal_replay import JournalReplay
from actors.lease_keeper import LeaseKeeper
from actors.legacy_executor import ExecutorClient, LegacyExecutor
from actors.messages import ReadSlot, SwiftProbe
from actors.profit_share import ProfitShareActor
from actors.retry_scheduler import RetryScheduler
from actors.services import NamedActor, Services
from actors.shared_probes import shared_probe
from actors.swift_gateway import SwiftGateway
from actors.venue_state import VenueState, VenueStateClient
from observability.systemd import report_supervisor_event
from observability.trading_metrics import prime_market_series
from supervision import (
    Backoff,
    ChildSpec,
    Intensity,
    NoSuchChild,
    Strategy,
    Supervisor,
    request,
    whereis,
)
from trading.profit_share import IouSchedule
from venue.auction import AuctionConfig
from venue.rpc_client import AllRpcDown, RpcError, RpcTransportError, error_label
from venue.swift_client import SwiftClient

FEED_TIMEOUT_S = 2.0
RPC_PROBE_TIMEOUT_S = 4.0  # at most; and within 80 % of HEALTH_INTERVAL_MS


def supervision_policy(services: Services) -> dict[str, Any]:
    """Intensity, backoff and event reporting shared by the daemon's supervisors."""
    s = services.settings
    return {
        "listener": report_supervisor_event,
        "intensity": Intensity(s.supervisor_max_restarts, s.supervisor_period_s),
        "backoff": Backoff(base_s=s.supervisor_backoff_base_ms / 1000,
                           cap_s=s.supervisor_backoff_cap_ms / 1000),
    }


def swift_probe(services: Services, client: SwiftClient) -> ProbeSpec:
    """Swift /health, every health interval (an unreachable Swift is a warning within one), fed
    to the gateway (the owner of the health flag) every SWIFT_HEALTH_CHECK_INTERVAL_MS as
    before: its count of failed probes keeps its meaning (SWIFT_FAILURES_UNHEALTHY failures in a
    row, one probe per SWIFT_HEALTH_CHECK_INTERVAL_MS). Asked of Swift by one process of the
    database (actors.shared_probes), read by the others."""
    s = services.settings
    feed_s = s.swift_health_check_interval_ms / 1000
    every_s = min(feed_s, s.health_interval_ms / 1000)
    fed_at = [float("-inf")]

    def ask_swift() -> ProbeResult:
        health = client.health()
        return ProbeResult(health.healthy, None if health.healthy else health.detail)

    shared = shared_probe(services, "swift", ask_swift, every_s, services.role.executes)

    def probe() -> ProbeResult:
        result = shared()
        now = time.monotonic()
        if (services.role.executes and services.root is not None
                and now - fed_at[0] >= feed_s - every_s / 2):
            # the gateway may not be up yet: the next probe feeds it
            with contextlib.suppress(NoSuchChild, pykka.Timeout, pykka.ActorDeadError):
                whereis(services.root, "swift_gateway", FEED_TIMEOUT_S).tell(
                    SwiftProbe(result.ok))
                fed_at[0] = now
        return result

    return ProbeSpec(probe, every_s)


def rpc_probe(services: Services) -> ProbeSpec:
    """getSlot through the LegacyExecutor (the owner of RPC failover, so the probe sees the
    endpoint orders would use), answered within a short timeout: no answer is "unreachable".
    Until the executor is up the probe cannot tell, and says so (ProbeSkipped). Asked of the
    venue by one process of the database (actors.shared_probes), read by the others."""
    interval_s = services.settings.health_interval_ms / 1000
    timeout_s = max(0.5, min(RPC_PROBE_TIMEOUT_S, 0.8 * interval_s))

    def probe() -> ProbeResult:
        if services.root is None:
            raise ProbeSkipped("the supervision tree is not started")
        try:
            executor = whereis(services.root, "legacy_executor", timeout_s)
        except (NoSuchChild, pykka.Timeout, pykka.ActorDeadError) as exc:
            raise ProbeSkipped(f"legacy_executor: {type(exc).__name__}") from None
        try:
            slot = request(executor, ReadSlot(), timeout_s)
        except pykka.ActorDeadError:  # restarting meanwhile: the next probe asks its successor
            raise ProbeSkipped("legacy_executor: restarting") from None
        except pykka.Timeout:
            return ProbeResult(False, f"no RPC endpoint answered getSlot within {timeout_s:g} s")
        except (RpcError, RpcTransportError, AllRpcDown) as exc:
            return ProbeResult(False, f"getSlot failed: {error_label(exc)}")
        return ProbeResult(True, f"slot {slot}")

    return ProbeSpec(shared_probe(services, "rpc", probe, interval_s, services.role.executes),
                     interval_s)


_EXECUTION = frozenset({"legacy_executor", "venue_state", "fill_tracker", "swift_gateway",
                        "profit_share", "lease_keeper", "bots", "retry_scheduler", "fanout",
                        "intake_listener"})
_HTTP = frozenset({"intake_journal"})


def root_children(services: Services, listeners: tuple[ChildSpec, ...] = (),
                  extra: tuple[ChildSpec, ...] = (),
                  changes: Mapping[str, ChildSpec | None] | None = None) -> list[ChildSpec]:
    """Child specs of the root supervisor for this process's role, in start order: the actors,
    then the HTTP `listeners` (built by httpapi.listeners: intake is the first thing to stop),
    then `extra` (the intake's worker pool: started last, stopped first). `changes` replaces
    (or, with None, leaves out) children by name: tests and benchmarks assemble the same tree."""
    role = services.role
    children = [spec for spec in _all_children(services)
                if (role.executes or spec.name not in _EXECUTION)
                and (role.serves_http or spec.name not in _HTTP)] + list(listeners) + list(extra)
    changes = changes or {}
    unknown = set(changes) - {spec.name for spec in children}
    if unknown:
        raise ValueError(f"no such child to change: {sorted(unknown)}")
    changed = (changes.get(spec.name, spec) for spec in children)
    return [spec for spec in changed if spec is not None]


def _all_children(services: Services) -> list[ChildSpec]:
    """Every child a process may run, in start order."""
    s = services.settings
    policy = supervision_policy(services)
    # every market of the venue has its per-market counters at 0 before its first order
    prime_market_series(market.symbol for market in services.profile.markets.values())
    swift = SwiftClient(services.profile.swift_base_url,
                        order_timeout_ms=s.swift_order_timeout_ms,
                        pool_size=s.swift_max_in_flight)  # a kept connection per POST
    health_s = s.health_interval_ms / 1000
    executor = ExecutorClient(services)
    venue = VenueStateClient(services)
    return [
        ChildSpec("health_monitor", HealthMonitor, kwargs={
            "probes": {
                "database": ProbeSpec(lambda: services.db.ping(timeout_s=2.0), health_s),
                "swift": swift_probe(services, swift),
                "rpc": rpc_probe(services),
            },
            "interval_s": health_s,
        }),
        ChildSpec("flags", FlagsActor, kwargs={"services": services}),
        ChildSpec("legacy_executor", LegacyExecutor, kwargs={
            "profile": services.profile, "slippage_bps": s.legacy_slippage_bps,
            "max_sends_in_flight": s.legacy_max_in_flight}),
        ChildSpec("venue_state", VenueState, kwargs={
            "executor": executor, "profile": services.profile, "clock": services.clock}),
        ChildSpec("fill_tracker", FillTracker, kwargs={
            "executor": executor, "venue": venue, "profile": services.profile}),
        ChildSpec("swift_gateway", SwiftGateway, kwargs={
            "client": swift, "venue": venue, "tracker": NamedActor(services, "fill_tracker"),
            "db": services.db,
            "auction": AuctionConfig(s.auction_start_bps, s.auction_end_bps,
                                     services.auction_slots()),
            "failures_unhealthy": s.swift_failures_unhealthy,
            "rate_per_s": s.swift_rate_per_s, "burst": s.swift_rate_burst,
            "max_in_flight": s.swift_max_in_flight,
            "recovery_s": max(30.0, s.swift_health_check_interval_ms / 1000),
            "profile": services.profile}),
        ChildSpec("profit_share", ProfitShareActor, kwargs={
            "services": services,
            "schedule": IouSchedule(interval_s=s.profit_share_interval_s,
                                    max_attempts=s.profit_share_max_attempts,
                                    ttl_s=s.profit_share_ttl_s)}),
        ChildSpec("lease_keeper", LeaseKeeper, kwargs={"services": services}),
        ChildSpec("bots", Supervisor, kwargs={"strategy": Strategy.ONE_FOR_ONE, **policy},
                  stop_timeout=60.0),
        ChildSpec("retry_scheduler", RetryScheduler, kwargs={
            "services": services, "tick_s": s.retry_tick_ms / 1000,
            "lease_s": s.retry_lease_s}),
        ChildSpec("fanout", FanoutCoordinator, kwargs={"services": services}),
        ChildSpec("intake_listener", IntakeListener, kwargs={"services": services}),
        ChildSpec("intake_journal", JournalReplay, kwargs={"services": services}),
    ]


def root_kwargs(services: Services, listeners: tuple[ChildSpec, ...] = (),
                extra: tuple[ChildSpec, ...] = (),
                changes: Mapping[str, ChildSpec | None] | None = None) -> dict[str, Any]:
    """Constructor arguments of the root supervisor (one_for_one)."""
    return {"children": root_children(services, listeners, extra, changes),
            "strategy": Strategy.ONE_FOR_ONE,
            **supervision_policy(services)}
