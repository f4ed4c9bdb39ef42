"""Structured logs: one JSON object per line on stderr, with the trade context when there is one."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

CONTEXT_FIELDS = ("signal_id", "bot_id", "swift_order_id", "actor")


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line; `extra={"bot_id": ...}` fields are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # the redaction filter leaves a scrubbed traceback here
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


class _JsonStderr(logging.StreamHandler):
    """Our handler, told apart from handlers others installed (which are left alone)."""


def setup_logging(level: str) -> None:
    """Send every log record to stderr as JSON at `level` (again: replaces only our handler)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonStderr)]:
        root.removeHandler(old)
    handler = _JsonStderr(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("pykka", "pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
