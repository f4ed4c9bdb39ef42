"""The one WSGI layer: the daemon's router and the sandbox answer through it alike."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from httpapi.router import HttpError, Router
from httpapi.router import Request as RouterRequest
from httpapi.wsgi import TEXT, Request, Response, environ_headers, respond
from sandbox.exchange import Exchange
from sandbox.server import SandboxApp


def _environ(method: str, path: str, body: bytes = b"", **extra: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), **extra}


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started["status"], started["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return started["status"], started["headers"], body


@pytest.mark.parametrize(("response", "status", "content_type", "payload"), [
    (Response(202, {"queued": True}), "202 Accepted", "application/json", b'{"queued": true}'),
    (Response.text(429, "slow down"), "429 Too Many Requests", TEXT, b"slow down"),
    (Response(200, b"\x00raw", "application/octet-stream"), "200 OK",
     "application/octet-stream", b"\x00raw"),
])
def test_an_answer_has_its_standard_status_line_length_and_body(
        response: Response, status: str, content_type: str, payload: bytes) -> None:
    answer = _call(lambda _env, start: respond(start, response, ("Connection", "close")), {})
    assert answer == (status, {"Content-Type": content_type,
                               "Content-Length": str(len(payload)), "Connection": "close"},
                      payload)


def test_headers_come_by_lower_case_name_with_the_content_type() -> None:
    environ = {"HTTP_X_WEBHOOK_SECRET": "s", "CONTENT_TYPE": "text/plain", "PATH_INFO": "/"}
    assert environ_headers(environ) == {"x-webhook-secret": "s", "content-type": "text/plain"}


def test_a_body_that_is_not_json_is_a_value_error_or_the_routers_400() -> None:
    with pytest.raises(ValueError):
        Request("POST", "/", {}, {}, b"{").json()
    with pytest.raises(HttpError) as refused:
        RouterRequest("POST", "/", {}, {}, b"{").json()
    assert refused.value.status == 400
    assert RouterRequest("POST", "/", {}, {}, b"").json() is None


def test_the_router_and_the_sandbox_answer_through_the_same_layer() -> None:
    router = Router()
    router.add("GET", "/echo/{name}", lambda request: Response(200, dict(request.params)))
    sandbox = SandboxApp(Exchange(seed=0))
    assert _call(router, _environ("GET", "/echo/a"))[::2] == ("200 OK", b'{"name": "a"}')
    assert _call(router, _environ("GET", "/nope"))[0] == "404 Not Found"
    assert _call(sandbox, _environ("GET", "/nope")) == (
        "404 Not Found", {"Content-Type": TEXT, "Content-Length": "14"}, b"No route /nope")
    status, _, body = _call(sandbox, _environ("POST", "/", json.dumps(
        {"jsonrpc": "2.0", "id": 7, "method": "getHealth"}).encode()))
    assert (status, json.loads(body)) == ("200 OK", {"jsonrpc": "2.0", "result": "ok", "id": 7})
