"""Redaction of secrets in URLs, so that no API key reaches a log line, repr or exception."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

_REDACTED = "***"


def redact_url(url: str | None) -> str | None:
    """Return ``url`` with its query values, userinfo and long path segments hidden.

    RPC providers put keys in the query (``?api-key=``) or in the path (Triton's
    ``https://host/<token>``), so both are hidden; scheme, host and port stay readable.
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _REDACTED
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"{_REDACTED}@{host}"
    query = ""
    if parts.query:
        names = [kv.split("=", 1)[0] for kv in parts.query.split("&") if kv]
        query = "&".join(f"{name}={_REDACTED}" for name in names)
    path = "/".join(
        _REDACTED if len(segment) >= 16 else segment for segment in parts.path.split("/")
    )
    return urlunsplit((parts.scheme, host, path, query, ""))


class _Urllib3RedactFilter(logging.Filter):
    """Rewrites urllib3's DEBUG request lines, whose arguments include path and query."""

    def filter(self, record: logging.LogRecord) -> bool:
        # the rendered line, not the arguments: another filter may have rendered it already
        words = record.getMessage().split(" ")
        record.msg = " ".join(
            (redact_url(f"http://h{word}") or "")[len("http://h"):] if word.startswith("/")
            else word
            for word in words)
        record.args = ()
        return True


_FILTER = _Urllib3RedactFilter()


def install_urllib3_redaction() -> None:
    """Make urllib3's connection-pool DEBUG logs safe (they print request paths with keys)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
