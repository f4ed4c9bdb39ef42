"""The intake's own guards, without a daemon: TRUSTED_PROXIES at start-up, the per-bot token
bucket, /readyz's reason, and the router's refusals of hostile requests (a WSGI environ built
by hand; the same paths through real HTTP are in tests/e2e/test_hostile_input.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

import runtime
from config import ConfigError, load_settings
from httpapi.ops_routes import not_ready_reason
from httpapi.router import HttpError, Request, Response, Router

# --- TRUSTED_PROXIES ---------------------------------------------------------------------


def test_trusted_proxies_take_addresses_and_networks() -> None:
    settings = load_settings({"TRUSTED_PROXIES": " 10.0.0.1, 10.1.0.0/16,::1 ,fd00::/8"})
    assert settings.trusted_proxies == ("10.0.0.1", "10.1.0.0/16", "::1", "fd00::/8")


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.1,10.0.0.300", "10.0.0.0/33",
                                   "nginx", "10.0.0.1;10.0.0.2"])
def test_a_trusted_proxy_that_is_no_address_stops_start_up(
        value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES") as refused:
        load_settings({"TRUSTED_PROXIES": value})
    assert "is not an IP address or network" in str(refused.value)
    monkeypatch.setenv("TRUSTED_PROXIES", value)
    assert runtime.main(["status"]) == runtime.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("quantumvault: invalid TRUSTED_PROXIES=")


@pytest.mark.parametrize(("name", "value"), [
    ("WEBHOOK_MAX_CONNECTIONS", "0"), ("WEBHOOK_MAX_CONNECTIONS", "lots"),
    ("WEBHOOK_READ_TIMEOUT_S", "0"), ("WEBHOOK_READ_TIMEOUT_S", "nan"),
    ("WEBHOOK_BOT_RATE_PER_S", "-1"), ("WEBHOOK_BOT_BURST", "0"),
])
def test_intake_limits_refuse_nonsense(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_intake_limit_defaults() -> None:
    settings = load_settings({})
    assert (settings.webhook_max_connections, settings.webhook_read_timeout_s,
            settings.webhook_bot_rate_per_s, settings.webhook_bot_burst) == (512, 10, 5, 20)


# --- /readyz's reason ----------------------------------------------------------------------


def _tree(bots_state: str = "running", bot_state: str = "running") -> dict[str, Any]:
    return {"children": {
        "health_monitor": {"state": "running"},
        "bots": {"state": bots_state, "children": {"bot-secret-id": {"state": bot_state}}},
        "webhook": {"state": "running"}}}


def test_readiness_reasons_never_name_a_bot() -> None:
    assert not_ready_reason(_tree(), True) is None
    assert not_ready_reason(None, True) == "the supervision tree does not answer"
    assert not_ready_reason(_tree(), False) == "the database does not answer"
    assert not_ready_reason(_tree(bots_state="restarting"), True) == "actor bots is restarting"
    reason = not_ready_reason(_tree(bot_state="restarting"), True)
    assert reason == "a child of bots is not running" and "bot-" not in reason


# --- the router ----------------------------------------------------------------------------


def _router() -> tuple[Router, list[Request]]:
    seen: list[Request] = []

    def echo(request: Request) -> Response:
        seen.append(request)
        return Response(200, {"ok": True})

    router = Router(max_body_bytes=100, read_timeout_s=5)
    router.add("POST", "/echo/{name}", echo)
    return router, seen


def _call(router: Router, path: str, body: bytes = b"", **environ: Any) -> tuple[int, dict,
                                                                                   dict]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    env = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
           "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
           "REMOTE_ADDR": "127.0.0.1", **environ}
    payload = b"".join(router(env, start_response))
    return answer["status"], answer["headers"], json.loads(payload)


@pytest.mark.parametrize(("path", "environ", "status", "reason"), [
    ("/echo/\x00", {}, 400, "NUL byte in the path"),
    ("/echo/a", {"QUERY_STRING": "secret=%00"}, 400, "NUL byte in the query"),
    ("/echo/a", {"QUERY_STRING": "&".join(f"k{i}=v" for i in range(100))}, 400, "query"),
    ("/echo/a", {"HTTP_X_WEBHOOK_SECRET": "a\x00"}, 400, "NUL byte in the headers"),
    ("/echo/a", {"CONTENT_TYPE": "text/\x00"}, 400, "NUL byte in the headers"),
    ("/echo/\xff\xfe", {}, 400, "not UTF-8"),
    ("/echo/a", {"CONTENT_LENGTH": "-5"}, 400, "Content-Length"),
    ("/echo/a", {"CONTENT_LENGTH": "5x"}, 400, "Content-Length"),
    ("/echo/a", {"CONTENT_LENGTH": "101"}, 413, "larger than 100"),
])
def test_hostile_requests_are_refused_before_the_handler(path: str, environ: dict[str, str],
                                                         status: int, reason: str) -> None:
    router, seen = _router()
    got = _call(router, path, b"{}", **environ)
    assert got[0] == status and reason in got[2]["error"], got
    assert seen == []


def test_deeply_nested_json_is_a_400_for_handlers() -> None:
    router = Router(max_body_bytes=64 * 1024)
    router.add("POST", "/json", lambda request: Response(200, request.json()))
    status, _, body = _call(router, "/json", b"[" * 60_000)
    assert status == 400 and "nested too deeply" in body["error"]


def test_a_utf8_path_reaches_the_handler_decoded() -> None:
    router, seen = _router()
    raw = "/echo/caf\u00e9".encode().decode("latin-1")  # what WSGI hands over
    assert _call(router, raw)[0] == 200
    assert seen[0].params["name"] == "caf\u00e9"


def test_a_body_over_the_limit_far_beyond_draining_closes_the_connection() -> None:
    router, _ = _router()
    status, headers, _ = _call(router, "/echo/a", b"", CONTENT_LENGTH=str(10 * 1024 * 1024))
    assert status == 413 and headers.get("Connection") == "close"
    status, headers, _ = _call(router, "/echo/a", b"", CONTENT_LENGTH="1000")
    assert status == 413 and "Connection" not in headers  # small: read out, answer kept


def test_a_handler_error_carries_its_headers() -> None:
    router = Router()

    def limited(_: Request) -> Response:
        raise HttpError(429, "slow down", headers=(("Retry-After", "3"),))

    router.add("POST", "/x", limited)
    status, headers, body = _call(router, "/x")
    assert (status, headers["Retry-After"], body) == (429, "3", {"error": "slow down"})
