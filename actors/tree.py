"""The supervision tree of the daemon, as data: which actors run, in which order, how restarted.

Children start in this order and stop in reverse: the health monitor first (it feeds the
others), the bot supervisor next (bot actors are added to it on demand), the webhook server
last, so nothing is accepted before the actors that handle it are up, and intake stops first.
"""

from __future__ import annotations

from actors.health_monitor import HealthMonitor
from actors.services import Services
from actors.webhook import WebhookActor
from httpapi.ops_routes import add_ops_routes
from httpapi.router import Router
from observability.systemd import report_supervisor_event
from supervision import Backoff, ChildSpec, Intensity, Strategy, Supervisor


def supervision_policy(services: Services) -> dict:
    """Intensity, backoff and event reporting shared by the daemon's supervisors."""
    s = services.settings
    return {
        "listener": report_supervisor_event,
        "intensity": Intensity(s["SUPERVISOR_MAX_RESTARTS"], s["SUPERVISOR_PERIOD_S"]),
        "backoff": Backoff(base_s=s["SUPERVISOR_BACKOFF_BASE_MS"] / 1000,
                           cap_s=s["SUPERVISOR_BACKOFF_CAP_MS"] / 1000),
    }


def build_router(services: Services) -> Router:
    """The HTTP routes served by the webhook actor."""
    router = Router()
    add_ops_routes(router, services)
    return router


def root_children(services: Services) -> list[ChildSpec]:
    """Child specs of the root supervisor, in start order."""
    s = services.settings
    policy = supervision_policy(services)
    return [
        ChildSpec("health_monitor", HealthMonitor, kwargs={
            "probes": {"database": lambda: services.db.ping(timeout_s=2.0)},
            "interval_s": s["HEALTH_INTERVAL_MS"] / 1000,
        }),
        ChildSpec("bots", Supervisor, kwargs={"strategy": Strategy.ONE_FOR_ONE, **policy},
                  stop_timeout=30.0),
        ChildSpec("webhook", WebhookActor, kwargs={
            "host": s["WEBHOOK_HOST"], "port": s["WEBHOOK_PORT"], "app": build_router(services),
        }),
    ]


def root_kwargs(services: Services) -> dict:
    """Constructor arguments of the root supervisor (one_for_one, as ARCHITECTURE.md says)."""
    return {"children": root_children(services), "strategy": Strategy.ONE_FOR_ONE,
            **supervision_policy(services)}
