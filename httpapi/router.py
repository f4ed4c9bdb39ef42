"""A small WSGI router: JSON in, JSON out, a body size limit, and no stack trace to the client.

Hostile input answers 4xx with a reason before any handler runs: a body over the limit
(announced or read, chunked or not), one that does not arrive within the read timeout, a NUL
byte in the path, query or headers, a path that is not UTF-8. A handler therefore only ever
sees text a database can store. When the rest of a body is not worth reading (announced far
over the limit, chunked over it, broken, too slow) the answer closes the connection instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

import gevent

from httpapi import wsgi
from httpapi.intake_metrics import HTTP_REQUESTS_REFUSED
from httpapi.wsgi import Response, StartResponse, environ_headers, respond
from security.errors import BadContentLength, BodyTooLarge
from security.webhook_auth import bearer_token, check_content_length

log = logging.getLogger(__name__)

MAX_QUERY_FIELDS = 64
# A refused body announced up to this size is read out, so that the client reads the answer
# instead of a reset; a larger one closes the connection unread.
DRAIN_MAX_BYTES = 1024 * 1024


class HttpError(Exception):
    """Raised by a handler to answer with `status` and a JSON `{"error": message}`.

    `headers` are added to the answer; `close` ends the connection after it (for a request
    whose remaining body is not worth reading).
    """

    def __init__(self, status: int, message: str, *,
                 headers: tuple[tuple[str, str], ...] = (), close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.close = close


class Request(wsgi.Request):
    """A request the router let through: no NUL byte in any of its text."""

    def json(self) -> Any:
        """The body parsed as JSON (None when empty), or HttpError 400."""
        try:
            return super().json() if self.body else None
        except ValueError as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "body is not valid JSON: nested too deeply") from None

    def bearer_token(self) -> str:
        """The token of an `Authorization: Bearer ...` header, or an empty string."""
        return bearer_token(self.headers.get("authorization")) or ""


Handler = Callable[[Request], Response]


def _refuse(reason: str, status: int, message: str, close: bool = False) -> HttpError:
    """Count a router-level refusal and make its answer."""
    HTTP_REQUESTS_REFUSED.labels(reason=reason).inc()
    return HttpError(status, message, close=close)


def _abandon_body(environ: dict[str, Any]) -> None:
    """Tell gevent's input not to read out the rest of the body: the connection is closed."""
    stream: Any = environ.get("wsgi.input")
    if hasattr(stream, "_chunked_input_error"):
        stream._chunked_input_error = True  # gevent's own "unknown state, do not drain" flag


class Router:
    """Maps (method, path pattern) to handlers; `{name}` in a pattern captures one segment.

    `accept(method, pattern)`, when given, decides which registered routes this router serves
    (the others answer 404 here): one route table can be split between two listeners.
    """

    def __init__(self, max_body_bytes: int = 64 * 1024,
                 read_timeout_s: float | None = None,
                 accept: Callable[[str, str], bool] | None = None) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._max_body = max_body_bytes
        self._read_timeout_s = read_timeout_s
        self._accept = accept

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` on `pattern` (e.g. "/api/signals/{id}")."""
        if self._accept is not None and not self._accept(method.upper(), pattern):
            return
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        close = False
        try:
            response = self._dispatch(environ)
        except HttpError as exc:
            response = Response(exc.status, {"error": exc.message}, headers=exc.headers)
            close = exc.close
        except Exception:
            log.exception("unhandled error in %s %r", environ.get("REQUEST_METHOD"),
                          str(environ.get("PATH_INFO", ""))[:200])
            response = Response(500, {"error": "internal error"})
        if not close:
            return respond(start_response, response)
        _abandon_body(environ)
        return respond(start_response, response, ("Connection", "close"))

    def _dispatch(self, environ: dict[str, Any]) -> Response:
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        body = self._read_body(environ)
        path = _path(environ.get("PATH_INFO", "") or "/")
        headers = _headers(environ)
        query = _query(environ.get("QUERY_STRING", ""))
        allowed = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if not match:
                continue
            allowed = True
            if route_method == method:
                return handler(Request(method, path, query, headers, body, match.groupdict(),
                                       environ.get("REMOTE_ADDR", "")))
        if allowed:
            raise HttpError(405, f"{method[:16]} not allowed on {path[:200]}")
        raise HttpError(404, f"no route for {path[:200]}")

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        """The whole body, never more than the limit, within the read timeout; or a refusal
        that closes the connection."""
        chunked = str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower() == "chunked"
        try:
            length = check_content_length(None if chunked else environ.get("CONTENT_LENGTH"),
                                          self._max_body)
        except BodyTooLarge:
            close = int(environ["CONTENT_LENGTH"]) > max(DRAIN_MAX_BYTES, self._max_body)
            raise _refuse("body_too_large", 413, f"body larger than {self._max_body} bytes",
                          close=close) from None
        except BadContentLength:
            raise _refuse("bad_content_length", 400,
                          "Content-Length is not a non-negative integer", close=True) from None
        if not length and not chunked:
            return b""
        stream = environ["wsgi.input"]
        deadline = gevent.Timeout(self._read_timeout_s)
        try:
            with deadline:
                body = stream.read(length if length is not None else self._max_body + 1)
        except (gevent.Timeout, TimeoutError) as exc:
            if isinstance(exc, gevent.Timeout) and exc is not deadline:
                raise
            raise _refuse("read_timeout", 408, "the body did not arrive in time",
                          close=True) from None
        except (OSError, ValueError):  # gevent: broken chunks; the peer went away
            raise _refuse("body_unreadable", 400, "the body could not be read",
                          close=True) from None
        if len(body) > self._max_body:
            raise _refuse("body_too_large", 413, f"body larger than {self._max_body} bytes",
                          close=True)
        return body


def _no_nul(text: str, where: str) -> str:
    if "\x00" in text:
        raise _refuse("nul_byte", 400, f"NUL byte in the {where}")
    return text


def _path(raw: str) -> str:
    """PATH_INFO (unquoted, latin-1 by WSGI) as the UTF-8 text the client meant."""
    try:
        path = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise _refuse("not_utf8", 400, "the path is not UTF-8") from None
    return _no_nul(path, "path")


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = environ_headers(environ)
    for name, value in headers.items():
        _no_nul(name + value, "headers")
    return headers


def _query(raw: str) -> dict[str, str]:
    try:
        parsed = parse_qs(raw, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise _refuse("bad_query", 400, f"more than {MAX_QUERY_FIELDS} query fields") from None
    query = {k: v[-1] for k, v in parsed.items()}
    for key, value in query.items():
        _no_nul(key + value, "query")
    return query
