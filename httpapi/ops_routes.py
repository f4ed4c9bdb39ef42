"""Operational routes: liveness, readiness, the supervision tree, and crash drills."""

from __future__ import annotations

import pykka

from actors.services import Services
from httpapi.router import HttpError, Request, Response, Router
from security.webhook_auth import verify_admin_token
from supervision import CrashChild, Status

ASK_TIMEOUT_S = 2.0


def _all_running(children: dict[str, dict]) -> bool:
    for child in children.values():
        if child["state"] != "running":
            return False
        nested = child.get("children")
        if nested is not None and not _all_running(nested):
            return False
    return True


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

    def healthz(_: Request) -> Response:
        return Response(200, {"status": "alive"})

    def readyz(_: Request) -> Response:
        tree = tree_status()
        tree_up = tree is not None and _all_running(tree["children"])
        database = services.db.ping(timeout_s=ASK_TIMEOUT_S)
        ready = tree_up and database
        return Response(200 if ready else 503,
                        {"ready": ready, "tree_up": tree_up, "database": database, "tree": tree})

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
