"""Operational routes: liveness, readiness, the supervision tree, and crash drills.

Two listeners serve them (actors/tree.py): /healthz and /readyz on the public webhook listener,
where load balancers look, and on the admin listener (ADMIN_HOST:ADMIN_PORT, loopback by
default) with the admin-token routes: the tree, crash drills, Swift metrics, signal stories.
Crash drills answer 403 unless CRASH_DRILLS_ENABLED is set.

Failed admin authentications are counted (`admin_auth_failures_total{reason}`) and limited per
client address: after ADMIN_FAILURE_BURST failures an address gets 429 (with Retry-After) for
every admin request, the right token included, until its bucket refills at
ADMIN_FAILURE_RATE_PER_S: a refused address learns nothing about the tokens it tries.

Readiness means "alerts are accepted durably": the tree is up and the database answers. A
degraded venue (its program known to be paused, Swift or RPC unreachable) does not make the
daemon unready, since alerts are stored and wait for the venue; it is /readyz's `reason` on a
200 answer. So: 200 `{"ready": true}`; 200 `{"ready": true, "reason": "<venue warnings>"}`
(joined by " | "); 503 `{"ready": false, "reason": "<why alerts are not accepted>"}`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pykka
from prometheus_client import Counter

from actors.messages import GetHealth
from actors.services import Services
from httpapi.router import HttpError, Request, Response, Router
from security.webhook_auth import verify_admin_token
from supervision import CrashChild, NoSuchChild, Status, whereis
from supervision.token_bucket import KeyedTokenBucket
from venue.profiles import VenueProfile

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 2.0
ADMIN_FAILURE_BURST = 10
ADMIN_FAILURE_RATE_PER_S = 0.2  # one more failed attempt per 5 s, per client address
ADMIN_FAILURE_MAX_CLIENTS = 4096
ADMIN_AUTH_FAILURES = Counter(
    "admin_auth_failures", "Admin-token authentications refused, by reason", ["reason"])
for _reason in ("missing", "wrong", "rate_limited"):
    ADMIN_AUTH_FAILURES.labels(reason=_reason)
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


def _failure_limiter(services: Services) -> KeyedTokenBucket:
    """The daemon's limiter of failed admin authentications (one per Services)."""
    limiter = getattr(services, "_admin_failures", None)
    if limiter is None:
        limiter = KeyedTokenBucket(ADMIN_FAILURE_RATE_PER_S, ADMIN_FAILURE_BURST,
                                   max_keys=ADMIN_FAILURE_MAX_CLIENTS)
        services._admin_failures = limiter  # type: ignore[attr-defined]
    return limiter


def require_admin(services: Services, request: Request) -> None:
    """Refuse (401) unless the request carries the admin bearer token; 429 for an address
    with too many failures (checked before the token, so it learns nothing)."""
    limiter = _failure_limiter(services)
    client = request.remote_addr[:64] or "unknown"
    wait_s = limiter.wait_s(client)
    if wait_s:
        ADMIN_AUTH_FAILURES.labels(reason="rate_limited").inc()
        raise HttpError(429, "too many failed admin authentications from this address",
                        headers=(("Retry-After", str(math.ceil(wait_s))),))
    token = request.bearer_token()
    if not verify_admin_token(services.admin_token, token):
        reason = "wrong" if token else "missing"
        limiter.take(client)
        ADMIN_AUTH_FAILURES.labels(reason=reason).inc()
        log.warning("admin authentication refused (%s token) from %s on %s", reason, client,
                    request.path[:100])
        raise HttpError(401, "admin token required")


def add_ops_routes(router: Router, services: Services) -> None:
    """Register /healthz, /readyz, /api/admin/tree and /api/admin/crash/{path} (a router may
    accept only some of them, see Router's `accept`)."""

    def tree_status() -> dict | None:
        if services.root is None:
            return None
        try:
            return services.root.ask(Status(), block=True, timeout=ASK_TIMEOUT_S)
        except (pykka.Timeout, pykka.ActorDeadError):
            return None

    def health_status() -> dict[str, Any] | None:
        if services.root is None:
            return None
        try:
            monitor = whereis(services.root, "health_monitor", ASK_TIMEOUT_S)
            return monitor.ask(GetHealth(), block=True, timeout=ASK_TIMEOUT_S)
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
        if not services.settings.crash_drills_enabled:
            raise HttpError(403, "crash drills are disabled (set CRASH_DRILLS_ENABLED=true)")
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
