"""Tiny WSGI helpers shared by the sandbox's route modules (request parsing, responses)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

MAX_BODY_BYTES = 4 * 1024 * 1024

_REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    412: "Precondition Failed", 415: "Unsupported Media Type", 422: "Unprocessable Entity",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


@dataclass
class Request:
    """The parts of a WSGI request the sandbox routes use."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    environ: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        """Read method, path, query, headers and the (bounded) body."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, MAX_BODY_BYTES)) if length > 0 else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=environ.get("PATH_INFO", "/") or "/",
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
            environ=environ,
        )

    def query_one(self, name: str) -> str | None:
        """First value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    """Status, body and content type of a reply."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def wsgi_status(self) -> str:
        """"200 OK" style status line."""
        return f"{self.status} {_REASONS.get(self.status, 'Unknown')}"


def json_response(status: int, payload: Any) -> Response:
    """A JSON reply."""
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(),
                    "application/json")


def text_response(status: int, text: str) -> Response:
    """A plain-text reply."""
    return Response(status, text.encode())


def reply(status: int, payload: Any) -> Response:
    """JSON for dicts/lists, text for strings."""
    if isinstance(payload, str):
        return text_response(status, payload)
    return json_response(status, payload)
