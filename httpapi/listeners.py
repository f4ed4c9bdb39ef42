"""The HTTP listeners of an intake process, as children of its supervision tree.

Two listeners, started after every actor they hand work to (so nothing is accepted before
the actors that handle it are up, and intake is the first thing to stop): the admin listener
(ADMIN_HOST:ADMIN_PORT, loopback by default: every /api/admin route, signal stories, manual
trades for the operator, /healthz, /readyz) and the public webhook listener (the webhook,
manual trades that owners call from outside, /healthz and /readyz for load balancers).
"""

from __future__ import annotations

from typing import Any

from actors.services import Services
from actors.webhook import WebhookActor
from httpapi.admin_routes import add_admin_routes
from httpapi.ops_routes import add_ops_routes
from httpapi.router import Router
from httpapi.trading_routes import add_trading_routes
from supervision import ChildSpec

ADMIN_MAX_CONNECTIONS = 64
_ADMIN_PREFIXES = ("/api/admin/", "/api/signals/")


def _public_route(_method: str, pattern: str) -> bool:
    """Routes of the public webhook listener: everything but admin and signal stories."""
    return not pattern.startswith(_ADMIN_PREFIXES)


def _admin_route(_method: str, pattern: str) -> bool:
    """Routes of the admin listener: admin, signal stories, manual trades, health."""
    return (pattern.startswith(_ADMIN_PREFIXES) or pattern.endswith("/manual-trade")
            or pattern in ("/healthz", "/readyz"))


def _routes(services: Services, accept: Any) -> Router:
    """One route table, filtered for a listener."""
    router = Router(max_body_bytes=services.settings.webhook_max_body_bytes,
                    read_timeout_s=services.settings.webhook_read_timeout_s, accept=accept)
    add_ops_routes(router, services)
    add_trading_routes(router, services)
    add_admin_routes(router, services)
    return router


def build_router(services: Services) -> Router:
    """The HTTP routes served by the public webhook listener."""
    return _routes(services, _public_route)


def build_admin_router(services: Services) -> Router:
    """The HTTP routes served by the admin listener."""
    return _routes(services, _admin_route)


def listener_specs(services: Services) -> tuple[ChildSpec, ...]:
    """The admin and webhook listeners, in start order."""
    s = services.settings
    return (
        ChildSpec("admin_api", WebhookActor, kwargs={
            "host": s.admin_host, "port": s.admin_port,
            "app": build_admin_router(services),
            "max_connections": ADMIN_MAX_CONNECTIONS,
            "read_timeout_s": s.webhook_read_timeout_s,
        }),
        ChildSpec("webhook", WebhookActor, kwargs={
            "host": s.webhook_host, "port": s.webhook_port, "app": build_router(services),
            "max_connections": s.webhook_max_connections,
            "read_timeout_s": s.webhook_read_timeout_s,
        }),
    )
