"""A small WSGI router: JSON in, JSON out, a body size limit, and no stack trace to the client."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from security.webhook_auth import bearer_token

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


class HttpError(Exception):
    """Raised by a handler to answer with `status` and a JSON `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    """What a handler needs of one HTTP request."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)
    remote_addr: str = ""

    def json(self) -> Any:
        """The body parsed as JSON, or HttpError 400."""
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from None

    def bearer_token(self) -> str:
        """The token of an `Authorization: Bearer ...` header, or an empty string."""
        return bearer_token(self.headers.get("authorization")) or ""


@dataclass(frozen=True)
class Response:
    """A handler's answer."""

    status: int
    body: Any
    content_type: str = "application/json"


Handler = Callable[[Request], Response]


class Router:
    """Maps (method, path pattern) to handlers; `{name}` in a pattern captures one segment."""

    def __init__(self, max_body_bytes: int = 64 * 1024) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._max_body = max_body_bytes

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` on `pattern` (e.g. "/api/signals/{id}")."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self._dispatch(environ)
        except HttpError as exc:
            response = Response(exc.status, {"error": exc.message})
        except Exception:
            log.exception("unhandled error in %s %s", environ.get("REQUEST_METHOD"),
                          environ.get("PATH_INFO"))
            response = Response(500, {"error": "internal error"})
        if response.content_type == "application/json":
            payload = json.dumps(response.body, default=str).encode()
        else:
            payload = str(response.body).encode()
        reason = _REASONS.get(response.status, "")
        start_response(f"{response.status} {reason}", [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(payload))),
        ])
        return [payload]

    def _dispatch(self, environ: dict[str, Any]) -> Response:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "") or "/"
        allowed = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if not match:
                continue
            allowed = True
            if route_method == method:
                return handler(self._request(environ, method, path, match.groupdict()))
        if allowed:
            raise HttpError(405, f"{method} not allowed on {path}")
        raise HttpError(404, f"no route for {path}")

    def _request(self, environ: dict[str, Any], method: str, path: str,
                 params: dict[str, str]) -> Request:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > self._max_body:
            raise HttpError(413, f"body larger than {self._max_body} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {key[5:].replace("_", "-").lower(): value
                   for key, value in environ.items() if key.startswith("HTTP_")}
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        return Request(method, path, query, headers, body, params,
                       environ.get("REMOTE_ADDR", ""))
