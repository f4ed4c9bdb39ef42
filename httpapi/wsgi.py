"""The one WSGI request/response layer, so the daemon's router and the sandbox answer alike.

It imports nothing of the project, so the sandbox (a venue, not a part of the daemon) can use it
too. Status lines take their reason phrase from `http.HTTPStatus`: no status table is kept. How a
request is read (strictly by the router, leniently by the sandbox) is each one's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """One HTTP request: the decoded path, one value per query field, lower-case header names."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)
    remote_addr: str = ""

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """An answer: `body` is JSON-encoded for a JSON content type, else sent as text or bytes."""

    status: int
    body: Any
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()
             ) -> Response:
        """A plain-text answer."""
        return cls(status, text, TEXT, headers)

    def payload(self) -> bytes:
        """The body as sent."""
        if self.content_type == JSON:
            return json.dumps(self.body, default=str).encode()
        if isinstance(self.body, bytes):
            return self.body
        return str(self.body).encode()


def environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers of a WSGI environ, by lower-case name (Content-Type included)."""
    headers = {key[5:].replace("_", "-").lower(): str(value)
               for key, value in environ.items() if key.startswith("HTTP_")}
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def respond(start_response: StartResponse, response: Response,
            *extra_headers: tuple[str, str]) -> list[bytes]:
    """Start the WSGI answer (standard reason phrase, Content-Length) and return its body."""
    payload = response.payload()
    start_response(f"{response.status} {HTTPStatus(response.status).phrase}",
                   [("Content-Type", response.content_type),
                    ("Content-Length", str(len(payload))), *response.headers, *extra_headers])
    return [payload]
