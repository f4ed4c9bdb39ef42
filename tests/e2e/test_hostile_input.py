"""Hostile input at the HTTP intake: never a 5xx, never more cost than needed.

One daemon tree per module (real PostgreSQL, real sandbox, real HTTP over loopback) takes the
known attacks one by one (NUL bytes, hostile JSON, absurd lengths, chunked bodies, wrong content
types), then a property test drives the webhook and manual-trade routes with generated paths,
headers and bodies: every answer is below 500, and an unauthenticated request writes no row and
sends no order. The limits (per-bot rate, connection limit, read timeouts) get their own small
trees.

Two bots: the victim only ever receives unauthenticated requests and stays active, so anything
that leaked through would reach the sandbox; the target receives authenticated hostile alerts
and is paused, so the ones that happen to be valid are recorded and skipped, not traded.
"""

from __future__ import annotations

import json
import os
import socket
import string
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from httpapi.intake_metrics import REFUSED_REASONS, UNAUTHENTICATED_REASONS
from tests import pg
from tests.e2e import rawhttp
from tests.e2e.stack import ADMIN, Stack

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
WEBHOOK = "/api/webhook/tradingview/"


@dataclass
class Intake:
    """The module's tree and its two bots."""

    stack: Stack
    victim: dict[str, Any]
    target: dict[str, Any]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.stack.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def rows(self) -> int:
        return self.stack.db.fetchone("SELECT count(*) AS n FROM webhook_signals")["n"]

    def bot_rows(self, bot: dict[str, Any]) -> list[dict[str, Any]]:
        return self.stack.db.fetchall(
            "SELECT status, error, raw_body FROM webhook_signals WHERE trading_bot_id = %s"
            " ORDER BY seq", (bot["bot_id"],))

    def orders(self) -> int:
        """Swift orders plus transactions the sandbox received, from anyone."""
        totals = requests.get(f"{self.stack.sandbox.url}/sandbox/stats", timeout=5).json()[
            "totals"]
        return totals.get("swift_orders_received", 0) + totals.get("transactions_received", 0)

    def post(self, target: bytes, body: bytes = b"", headers: tuple = (),
             framing: str = "length", method: str = "POST") -> rawhttp.RawResponse:
        return rawhttp.request(self.address, method, target, headers, body, framing=framing)

    def webhook(self, bot: dict[str, Any], body: bytes, secret: str | None = None,
                **kwargs: Any) -> rawhttp.RawResponse:
        query = urllib.parse.urlencode({"secret": bot["secret"] if secret is None else secret})
        return self.post(f"{WEBHOOK}{bot['bot_id']}?{query}".encode(), body, **kwargs)


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    stack = Stack(pg.fresh_database(), tmp_path_factory.mktemp("hostile"),
                  WEBHOOK_BOT_BURST="100000", WEBHOOK_BOT_RATE_PER_S="10000")
    try:
        victim, target = stack.new_bot(), stack.new_bot()
        stack.cli("bot", "pause", target["bot_id"], "--reason", "hostile input test")
        yield Intake(stack, victim, target)
    finally:
        stack.close()


def metric(name: str, **labels: str) -> float | None:
    """A sample of this process's registry (the tree runs in the test process)."""
    return REGISTRY.get_sample_value(name, labels)


# --- the known attacks, one by one ----------------------------------------------------------


def test_nul_in_the_path_answers_400_and_touches_nothing(intake: Intake) -> None:
    rows, before = intake.rows(), metric("http_requests_refused_total", reason="nul_byte")
    for target in (b"/api/webhook/tradingview/%00", b"/api/webhook/tradingview/a%00b?secret=x",
                   b"/api/trading-bots/%00/manual-trade", b"/healthz%00"):
        answer = intake.post(target, OPEN_LONG.encode())
        assert answer.status == 400 and "NUL" in answer.json()["error"], (target, answer)
    answer = intake.post(f"{WEBHOOK}{intake.victim['bot_id']}?secret=%00".encode(), b"{}")
    assert answer.status == 400
    answer = intake.post(f"{WEBHOOK}{intake.victim['bot_id']}".encode(), b"{}",
                         headers=((b"X-Webhook-Secret", b"qvwh_\x00"),))
    assert answer.status == 400
    assert intake.rows() == rows
    assert metric("http_requests_refused_total", reason="nul_byte") == before + 6


def test_nul_in_an_unauthenticated_body_is_counted_not_stored(intake: Intake,
                                                              caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    rows = intake.rows()
    before = metric("webhook_unauthenticated_total", reason="webhook_secret_mismatch")
    wrong = "qvwh_" + "w" * 43
    with caplog.at_level("INFO"):
        answer = intake.webhook(intake.victim, b'{"action": "buy\x00"}', secret=wrong)
        missing = intake.webhook(intake.victim, b"\x00" * 100, secret="")
    assert (answer.status, missing.status) == (401, 401)
    assert intake.rows() == rows and intake.bot_rows(intake.victim) == []
    assert metric("webhook_unauthenticated_total",
                  reason="webhook_secret_mismatch") == before + 1
    refused = [r for r in caplog.records if r.getMessage().startswith("webhook refused")]
    assert [r.getMessage().split(" (")[0] for r in refused] == [
        "webhook refused: webhook_secret_mismatch", "webhook refused: webhook_secret_missing"]
    assert wrong not in caplog.text and intake.victim["secret"] not in caplog.text


def test_hostile_authenticated_bodies_are_recorded_rejections(intake: Intake) -> None:
    bodies = {
        b'{"action": "buy", "contracts": 1, "ticker": "SOL\x00"}': "NUL",
        b'{"action": "buy", "contracts": 1, "ticker": "SOL\\u0000"}': "NUL",
        b'{"action": "buy", "contracts": 1, "ticker": "\\ud800"}': "Unicode",
        b"[" * 50_000: "nested",
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000: "nested",
        b'{"action": "buy", "contracts": ' + b"9" * 5000 + b"}": "too long",
        b'{"action": "buy", "contracts": 1e999}': "finite",
        b'{"action": "buy", "contracts": NaN}': "finite",
        b'{"action": "buy", "contracts": -Infinity}': "finite",
        b'{"action": "buy", "contracts": 1e-40}': "absurdly small",
        b'{"action": "buy", "contracts": 1, "position_size": 1e300}': "absurdly large",
        b"\xff\xfe\x00order": "UTF-8",
    }
    rows = len(intake.bot_rows(intake.target))
    for body, reason in bodies.items():
        answer = intake.webhook(intake.target, body, headers=((b"Content-Type",
                                                               b"application/json"),))
        assert answer.status == 400 and reason in answer.json()["error"], (body[:60], answer)
    recorded = intake.bot_rows(intake.target)[rows:]
    assert [r["status"] for r in recorded] == ["rejected"] * len(bodies)
    assert all("\x00" not in (r["raw_body"] or "") + r["error"] for r in recorded)
    assert "\ufffd" in recorded[0]["raw_body"]  # the NUL, replaced


@pytest.mark.parametrize(("content_length", "status"), [
    (b"-1", 400), (b"abc", 400), (b"1e3", 400), (b"99999999999999999999999", 413),
    (b"2000000", 413),  # far over the limit: answered at once, the connection closed unread
])
def test_absurd_content_lengths_answer_4xx(intake: Intake, content_length: bytes,
                                           status: int) -> None:
    rows = intake.rows()
    data = (f"POST {WEBHOOK}{intake.target['bot_id']}?secret={intake.target['secret']} "
            "HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ").encode()
    answer = rawhttp.send(intake.address, data + content_length + b"\r\n\r\n{}")
    assert answer.status == status
    assert intake.rows() == rows


def test_a_body_just_over_the_limit_is_refused_and_read_out(intake: Intake) -> None:
    answer = intake.webhook(intake.target, b"x" * 70_000)
    assert answer.status == 413 and "larger than 65536" in answer.json()["error"]


def test_chunked_bodies_are_read_within_the_limit(intake: Intake) -> None:
    body = b'{"action": "buy", "contracts": 1, "position_size": 1, "timenow": "chunked"}'
    accepted = intake.webhook(intake.target, body, framing="chunked")
    assert accepted.status == 202, accepted
    row = intake.stack.db.fetchone("SELECT raw_body FROM webhook_signals WHERE id = %s",
                                   (accepted.json()["signal_id"],))
    assert row["raw_body"] == body.decode()
    huge = intake.webhook(intake.target, b"x" * 70_000, framing="chunked")
    assert huge.status == 413 and huge.headers.get("connection") == "close"
    broken = rawhttp.send(intake.address, (
        f"POST {WEBHOOK}{intake.target['bot_id']} HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").encode())
    assert broken.status == 400


def test_wrong_content_types_and_protocol_tricks_answer_4xx(intake: Intake) -> None:
    for content_type in (b"image/png", b"application/json; charset=latin-1", b"multipart/x",
                         b"\xff\xfe"):
        answer = intake.webhook(intake.target, b"\x89PNG\r\n", headers=((b"Content-Type",
                                                                        content_type),))
        assert answer.status == 400, (content_type, answer)
    upgrade = intake.webhook(intake.target, b"{not json", framing="chunked",
                             headers=((b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")))
    assert upgrade.status == 400 and "malformed" in upgrade.json()["error"]  # read, not raw
    bad_path = intake.post(b"/api/webhook/tradingview/%ff%fe")
    assert bad_path.status == 400 and "UTF-8" in bad_path.json()["error"]
    long_id = intake.post(f"{WEBHOOK}{'b' * 300}".encode())
    assert long_id.status == 404
    header_nul = rawhttp.send(intake.address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                              b"X-A: a\x00b\r\nConnection: close\r\n\r\n")
    assert 400 <= header_nul.status < 500
    garbage = rawhttp.send(intake.address, b"\x00\x01\x02 / HTTP/9.9\r\n\r\n")
    assert garbage.status == 400


def test_manual_trade_refuses_hostile_json(intake: Intake) -> None:
    url = f"/api/trading-bots/{intake.target['bot_id']}/manual-trade".encode()
    auth = (b"Authorization", f"Bearer {ADMIN}".encode())
    for body in (b"[" * 50_000, b'{"action": "buy", "useSwift": NaN}', b"\xff",
                 b'{"action": ["buy"]}', b'{"action": {"a": 1}}'):
        answer = intake.post(url, body, headers=(auth,))
        assert answer.status == 400, (body[:40], answer)
    assert intake.post(url, b'{"action": "buy"}').status == 401


def test_readyz_says_ready_without_the_tree(intake: Intake) -> None:
    intake.webhook(intake.victim, b"not an alert", secret="wrong")  # nothing starts a bot
    ready = requests.get(intake.stack.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    tree = requests.get(intake.stack.admin_url + "/api/admin/tree", timeout=5,
                        headers={"Authorization": f"Bearer {ADMIN}"})
    assert tree.status_code == 200 and "bots" in tree.json()["children"]
    assert requests.get(intake.stack.admin_url + "/api/admin/tree", timeout=5).status_code == 401


def test_every_known_refusal_reason_has_a_series_from_the_start(intake: Intake) -> None:
    for reason in UNAUTHENTICATED_REASONS:
        assert metric("webhook_unauthenticated_total", reason=reason) is not None, reason
    for reason in REFUSED_REASONS:
        assert metric("http_requests_refused_total", reason=reason) is not None, reason
    assert metric("webhook_rate_limited_total") is not None


# --- the property --------------------------------------------------------------------------

VICTIM, TARGET, SECRET, TOKEN = "<victim>", "<target>", "<secret>", "<admin>"
_LINE_SAFE = bytes(b for b in range(256) if b not in b"\r\n")
_HOSTILE_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "0", "-0",
                    "<5000 digits>", "1e12", "1e13", "0.0000000000000000000001", "1E+999999999",
                    "9" * 40, "-1", "1.5", "1")
hostile_numbers = st.sampled_from(_HOSTILE_NUMBERS).map(
    lambda n: "1" * 5000 if n == "<5000 digits>" else n)

line_bytes = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c not in b"\r\n"))
junk_text = st.text(max_size=30)  # any code point but surrogates, NUL included


def _quoted(raw: bytes, keep_raw: bool) -> bytes:
    """Percent-encode a path segment; with keep_raw, bytes that do not break the request
    line (no space, CR, LF) go through as they are, NUL and high bytes included."""
    if not keep_raw:
        return urllib.parse.quote_from_bytes(raw, safe="").encode()
    return b"".join(bytes([c]) if c not in b" \r\n\t?#%" else b"%%%02X" % c for c in raw)


def _json_value() -> st.SearchStrategy[str]:
    atoms = st.one_of(st.none().map(json.dumps), st.booleans().map(json.dumps),
                      st.integers().map(str), hostile_numbers,
                      st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
                      junk_text.map(json.dumps),
                      junk_text.map(lambda t: json.dumps(t, ensure_ascii=False)),
                      st.sampled_from(['"\\u0000"', '"\\ud800"', '"\\udfff x"', '"a\\u0000b"']))
    return st.recursive(atoms, lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.dictionaries(junk_text.map(json.dumps), inner, max_size=4).map(
            lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}")),
        max_leaves=12)


@st.composite
def _alert_like(draw: st.DrawFn) -> bytes:
    """A TradingView template with hostile values in its fields."""
    number = st.one_of(hostile_numbers, _json_value())
    fields = {
        "action": draw(st.one_of(st.sampled_from(['"buy"', '"sell"', '"long"', '"hold"', '""']),
                                 _json_value())),
        "contracts": draw(number),
        "position_size": draw(number),
        "market_position": draw(st.sampled_from(['"long"', '"flat"', '"sideways"', "1"])),
        "ticker": draw(_json_value()),
        "price": draw(number),
        "timenow": json.dumps(draw(junk_text)),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    return ("{" + ",".join(f'"{k}": {fields[k]}' for k in chosen) + "}").encode()


@st.composite
def _plain_like(draw: st.DrawFn) -> bytes:
    """TradingView's default strategy message with hostile contents."""
    action = draw(st.sampled_from(["buy", "sell", "BUY", "hold", "buy\x00"]))
    contracts = draw(hostile_numbers)
    position = draw(hostile_numbers)
    ticker = "".join(c for c in draw(junk_text) if not c.isspace()) or "SOLUSD"
    return (f"order {action} @ {contracts} filled on {ticker}. New strategy position is "
            f"{position}").encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.binary(max_size=2048),
    _json_value().map(lambda t: t.encode("utf-8", "surrogatepass")),
    _alert_like(),
    _plain_like(),
    st.integers(1, 30_000).map(lambda n: b"[" * n),
    st.integers(1, 12_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.tuples(_alert_like(), st.integers(0, 200)).map(lambda t: t[0][:t[1]] + b"\x00" +
                                                      t[0][t[1]:]),
    st.just(b"x" * 65_537),
)

extra_headers = st.lists(st.one_of(
    st.tuples(st.text(string.ascii_letters + "-", min_size=1, max_size=12).map(
        lambda n: ("X-Junk-" + n).encode()), line_bytes),
    st.sampled_from([(b"Expect", b"100-continue"), (b"Upgrade", b"h2c"),
                     (b"Connection", b"keep-alive, Upgrade"), (b"Content-Encoding", b"gzip"),
                     (b"X-Forwarded-For", b"1.2.3.4, ::1, nonsense"),
                     (b"X-Forwarded-For", b"\x00\xff"), (b"Accept", b"*/*")]),
    st.tuples(st.just(b"X-Webhook-Secret"), line_bytes),
    st.tuples(st.just(b"Authorization"), line_bytes.map(lambda b: b"Bearer " + b)),
), max_size=4)


@st.composite
def hostile_requests(draw: st.DrawFn) -> dict[str, Any]:
    """One request as symbols (the bots' ids and secrets are filled in by the test).

    Half of them carry the right credentials to the right place (the hostile part is then
    the body, the headers, the query), so the parsing behind authentication is driven too;
    the other half get at least one credential, the bot, the method or the path wrong.
    """
    route = draw(st.sampled_from(["webhook", "webhook", "webhook", "manual", "manual",
                                  "other"]))
    aimed = route != "other" and draw(st.booleans())
    if aimed:
        bot, method, suffix = TARGET, "POST", b""
        secret = SECRET if route == "webhook" else draw(st.sampled_from([SECRET, "none"]))
        token = TOKEN if route == "manual" else draw(st.sampled_from([TOKEN, "none"]))
    else:
        bot = draw(st.sampled_from([VICTIM, TARGET, "junk"]))
        method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT"]))
        suffix = draw(st.sampled_from([b""] * 6 + [b"/", b"/extra", b"/..", b"%2f..%2f"]))
        secret = draw(st.sampled_from([SECRET, "wrong", "none", "junk"]))
        token = draw(st.sampled_from([TOKEN, "wrong", "none"]))
    return {
        "route": route, "bot": bot,
        "segment": draw(st.binary(max_size=30)) if bot == "junk" else bot,
        "keep_raw": draw(st.booleans()), "method": method, "suffix": suffix,
        "secret": secret, "secret_junk": draw(line_bytes),
        "secret_in": draw(st.sampled_from(["query", "header"])),
        "token": token,
        "query_junk": draw(st.lists(st.tuples(st.text(string.ascii_lowercase, min_size=1,
                                                      max_size=6), st.binary(max_size=20)),
                                    max_size=3)),
        "content_type": draw(st.one_of(st.sampled_from(
            [b"application/json", b"text/plain", b"text/plain; charset=utf-8", b"image/png",
             b""]), line_bytes)),
        # a second credential header would make the first ambiguous (gevent joins them)
        "headers": [h for h in draw(extra_headers) if not aimed or h[0] not in (
            b"X-Webhook-Secret", b"Authorization")],
        "body": draw(bodies),
        "framing": draw(st.sampled_from(["length", "chunked"])),
    }


def _resolve(intake: Intake, spec: dict[str, Any]) -> tuple[bytes, list[tuple[bytes, bytes]],
                                                             bool]:
    """The request target and headers, and whether it is authenticated."""
    bots = {VICTIM: intake.victim, TARGET: intake.target}
    segment = spec["segment"]
    if isinstance(segment, str):
        segment = bots[segment]["bot_id"].encode()
        encoded = segment
    else:
        encoded = _quoted(segment, spec["keep_raw"])
    if spec["route"] == "webhook":
        path = WEBHOOK.encode() + encoded + spec["suffix"]
    elif spec["route"] == "manual":
        path = b"/api/trading-bots/" + encoded + b"/manual-trade" + spec["suffix"]
    else:
        path = b"/" + encoded + spec["suffix"]
    secret = {SECRET: intake.target["secret"].encode(), "wrong": b"qvwh_" + b"x" * 43,
              "none": b"", "junk": spec["secret_junk"]}[spec["secret"]]
    query = [(k.encode(), v) for k, v in spec["query_junk"]]
    headers = list(spec["headers"])
    if secret and spec["secret_in"] == "query":
        query.append((b"secret", secret))
    elif secret:
        headers.append((b"X-Webhook-Secret", secret))
    token = {TOKEN: ADMIN.encode(), "wrong": b"not-the-token", "none": b""}[spec["token"]]
    if token:
        headers.append((b"Authorization", b"Bearer " + token))
    if spec["content_type"]:
        headers.append((b"Content-Type", spec["content_type"]))
    if query:
        path += b"?" + urllib.parse.urlencode(query).encode()
    post = spec["method"] == "POST" and spec["suffix"] == b""
    authenticated = post and (
        (spec["route"] == "webhook" and spec["bot"] == TARGET and spec["secret"] == SECRET)
        or (spec["route"] == "manual" and spec["token"] == TOKEN))
    return path, headers, authenticated


@settings(max_examples=200, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(spec=hostile_requests())
def test_property_no_5xx_and_unauthenticated_requests_cost_nothing(
        intake: Intake, spec: dict[str, Any]) -> None:
    path, headers, authenticated = _resolve(intake, spec)
    rows, orders = intake.rows(), intake.orders()
    answer = intake.post(path, spec["body"], tuple(headers), framing=spec["framing"],
                         method=spec["method"])
    event(f"{spec['route']} {'authenticated' if authenticated else 'unauthenticated'} "
          f"{answer.status}")  # pytest --hypothesis-show-statistics
    assert 0 < answer.status < 500, (answer, path)
    if answer.status >= 400 and answer.headers.get("content-type") == "application/json":
        assert answer.json()["error"], answer
    if not authenticated:
        assert intake.rows() == rows, (answer, path)
        assert intake.orders() == orders, (answer, path)


def test_after_the_property_nothing_reached_the_sandbox(intake: Intake) -> None:
    assert intake.stack.orders_reaching_sandbox(intake.victim["agent"]) == 0
    assert intake.stack.orders_reaching_sandbox(intake.target["agent"]) == 0
    assert intake.bot_rows(intake.victim) == []
    assert requests.get(intake.stack.url + "/readyz", timeout=5).json() == {"ready": True}


# --- limits --------------------------------------------------------------------------------

ALERT = '{{"action": "buy", "contracts": 1, "position_size": 1, "timenow": "{}"}}'


@pytest.mark.parametrize("stack", [{"WEBHOOK_BOT_BURST": "3", "WEBHOOK_BOT_RATE_PER_S": "0.01"}],
                         indirect=True)
def test_authenticated_alerts_are_rate_limited_per_bot(stack: Stack) -> None:
    flooded, other = stack.new_bot(), stack.new_bot()
    for bot in (flooded, other):
        stack.cli("bot", "pause", bot["bot_id"], "--reason", "rate limit test")
    for _ in range(10):  # wrong secrets do not spend the bot's tokens
        assert stack.alert(flooded, ALERT.format("x"), secret="wrong").status_code == 401
    answers = [stack.alert(flooded, ALERT.format(i), "application/json") for i in range(5)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    assert int(answers[3].headers["Retry-After"]) >= 1 and "per second" in answers[3].text
    assert stack.alert(other, ALERT.format(0), "application/json").status_code == 202
    rows = stack.db.fetchall("SELECT status FROM webhook_signals WHERE trading_bot_id = %s",
                             (flooded["bot_id"],))
    assert len(rows) == 3  # refused alerts wrote nothing


@pytest.mark.parametrize("stack", [{"WEBHOOK_MAX_CONNECTIONS": "4",
                                    "WEBHOOK_READ_TIMEOUT_S": "0.5"}], indirect=True)
def test_idle_connections_are_bounded_and_time_out(stack: Stack) -> None:
    host, port = stack.url.removeprefix("http://").rsplit(":", 1)
    address = (host, int(port))
    idle = [socket.create_connection(address, timeout=10) for _ in range(6)]
    try:
        answer = requests.get(stack.url + "/healthz", timeout=10)  # waits for a free slot
        assert answer.status_code == 200
        # it was served only after the first four idle connections were cut at their timeout
        for sock in idle[:4]:
            sock.setblocking(False)
            assert sock.recv(10) == b""
        for sock in idle[4:]:  # and the others are cut in turn
            sock.settimeout(10)
            assert sock.recv(10) == b""
    finally:
        for sock in idle:
            sock.close()
    slow_body = rawhttp.send(address, (
        f"POST {WEBHOOK}x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").encode() +
        b"{" * 10)
    assert slow_body.status == 408
    slow_headers = rawhttp.send(address, b"POST /healthz HTTP/1.1\r\nHost: x\r\n")
    assert slow_headers.status == 408
    assert requests.get(stack.url + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("stack", [{"WEBHOOK_MAX_CONNECTIONS": "8"}], indirect=True)
def test_many_idle_connections_do_not_take_a_descriptor_each(stack: Stack) -> None:
    host, port = stack.url.removeprefix("http://").rsplit(":", 1)
    address = (host, int(port))
    before = len(os.listdir("/proc/self/fd"))
    idle = [socket.create_connection(address, timeout=10) for _ in range(100)]
    try:
        # a round trip on the first one: the server's accept loop has run by then
        idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rawhttp.read_answer(idle[0]).status == 200
        # the server holds at most 8 of them (the rest wait in the kernel's backlog): the
        # process (client and server side) grew by the 100 client sockets and at most 8 more
        opened = len(os.listdir("/proc/self/fd")) - before
        assert 100 <= opened <= 100 + 8 + 4, opened
    finally:
        for sock in idle:
            sock.close()
