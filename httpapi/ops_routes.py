"""Operational routes: liveness, readiness, the supervision tree, and crash drills.

Readiness means "alerts are accepted durably": the tree is up and the database answers. A
degraded venue (its program known to be paused, Swift or RPC unreachable) does not make the
daemon unready, since alerts are stored and wait for the venue; it is /readyz's `reason` on a
200 answer. So: 200 `{"ready": true}`; 200 `{"ready": true, "reason": "<venue warnings>"}`
(joined by " | "); 503 `{"ready": false, "reason": "<why alerts are not accepted>"}`.
"""

from __future__ import annotations

from typing import Any

import pykka

from actors.health_monitor import GetHealth
from actors.services import Services
from httpapi.router import HttpError, Request, Response, Router
from security.webhook_auth import verify_admin_token
from supervision import CrashChild, NoSuchChild, Status, whereis
from venue.profiles import VenueProfile

ASK_TIMEOUT_S = 2.0
WARNING_SEPARATOR = " | "
VENUE_PROBES = (("swift", "Swift"), ("rpc", "RPC"))  # health monitor probe name, label


def _all_running(children: dict[str, dict]) -> bool:
    for child in children.values():
        if child["state"] != "running":
            return False
        nested = child.get("children")
        if nested is not None and not _all_running(nested):
            return False
    return True


def not_ready_reason(tree: dict | None, database: bool) -> str | None:
    """Why the daemon is not ready, naming only top-level actors (never a bot); None if ready."""
    if tree is None:
        return "the supervision tree does not answer"
    for name, child in tree["children"].items():
        if child["state"] != "running":
            return f"actor {name} is {child['state']}"
        nested = child.get("children")
        if nested is not None and not _all_running(nested):
            return f"a child of {name} is not running"
    if not database:
        return "the database does not answer"
    return None


def venue_warnings(profile: VenueProfile, health: dict[str, Any] | None) -> list[str]:
    """What is wrong with the venue: its program known to be paused, Swift or RPC unreachable
    at the health monitor's last probe (probe details are secret-free)."""
    warnings = []
    if profile.paused_program is not None:
        warnings.append(profile.paused_program.warning(profile.name))
    for name, label in VENUE_PROBES:
        state = (health or {}).get(name)
        if state is not None and not state["ok"]:
            warnings.append(f"{label} unreachable: {state['error']}")
    return warnings


def require_admin(services: Services, request: Request) -> None:
    """Refuse (401) unless the request carries the admin bearer token."""
    if not verify_admin_token(services.admin_token, request.bearer_token()):
        raise HttpError(401, "admin token required")


def add_ops_routes(router: Router, services: Services) -> None:
    """Register /healthz, /readyz, /api/admin/tree and /api/admin/crash/{path}."""

    def tree_status() -> dict | None:
        if services.root is None:
            return None
        try:
            return services.root.ask(Status(), timeout=ASK_TIMEOUT_S)
        except (pykka.Timeout, pykka.ActorDeadError):
            return None

    def health_status() -> dict[str, Any] | None:
        if services.root is None:
            return None
        try:
            monitor = whereis(services.root, "health_monitor", ASK_TIMEOUT_S)
            return monitor.ask(GetHealth(), timeout=ASK_TIMEOUT_S)
        except (NoSuchChild, pykka.Timeout, pykka.ActorDeadError):
            return None

    def healthz(_: Request) -> Response:
        return Response(200, {"status": "alive"})

    def readyz(_: Request) -> Response:
        # Anonymous: ready or not and why, never the tree (it names every bot); the tree is
        # GET /api/admin/tree, behind the admin token.
        reason = not_ready_reason(tree_status(), services.db.ping(timeout_s=ASK_TIMEOUT_S))
        if reason is not None:
            return Response(503, {"ready": False, "reason": reason})
        warnings = venue_warnings(services.profile, health_status())
        if warnings:  # alerts are still stored: ready, with the venue's state said out loud
            return Response(200, {"ready": True, "reason": WARNING_SEPARATOR.join(warnings)})
        return Response(200, {"ready": True})

    def admin_tree(request: Request) -> Response:
        require_admin(services, request)
        return Response(200, tree_status())

    def admin_crash(request: Request) -> Response:
        require_admin(services, request)
        path = request.params["path"].replace(":", "/")
        if services.root is None:
            raise HttpError(503, "supervision tree not started")
        try:
            services.root.ask(CrashChild(path), timeout=ASK_TIMEOUT_S)
        except LookupError as exc:
            raise HttpError(404, str(exc)) from None
        return Response(202, {"crashed": path})

    router.add("GET", "/healthz", healthz)
    router.add("GET", "/readyz", readyz)
    router.add("GET", "/api/admin/tree", admin_tree)
    router.add("POST", "/api/admin/crash/{path}", admin_crash)
