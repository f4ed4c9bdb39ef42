"""How an operator command reports: one JSON object with --json, else one human line.

Refusals raise `CliError` with a message meant for the operator; the wrapper prints it as one
line on stderr (and `{"error": ...}` on stdout with --json) and exits 1. Database errors are
reported by class name only: their text can quote row values. Any other failure is logged
(through the redacting log filter) and reported by class name, also with exit 1.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg2

from security.errors import SecurityError

log = logging.getLogger("quantumvault.operator")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_NOT_FUNDED = 4  # wallet stored, sandbox faucet failed (retry with `wallet fund`)


class CliError(Exception):
    """Bad input or a refused operation; the message is shown to the operator as is."""


@dataclass
class Outcome:
    """What a command did: a human line, the JSON object, an exit code and optional warning."""

    human: str
    data: dict[str, Any]
    code: int = EXIT_OK
    warning: str | None = None
    extra_lines: list[str] = field(default_factory=list)


def plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 5.00 -> "5", 2500.500000 -> "2500.5"."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _json_default(value: Any) -> Any:
    """JSON for datetimes (ISO 8601) and decimals (plain text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return plain(value)
    return str(value)


Command = Callable[[Any, argparse.Namespace], Outcome]


def _error(args: argparse.Namespace, message: str) -> int:
    """One stderr line, and the JSON error object on stdout with --json."""
    print(f"quantumvault: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": message}))
    return EXIT_REFUSED


def command(func: Command) -> Callable[[Any, argparse.Namespace], int]:
    """Wrap a command: print its outcome or its refusal; return the exit status."""

    @functools.wraps(func)
    def run(settings: Any, args: argparse.Namespace) -> int:
        try:
            outcome = func(settings, args)
        except CliError as exc:
            return _error(args, str(exc))
        except SecurityError as exc:  # fixed messages, never key material
            return _error(args, str(exc))
        except psycopg2.Error as exc:
            return _error(args, f"database error ({type(exc).__name__}); nothing was changed")
        except Exception as exc:  # the details go to the (redacted) log, not to the output
            log.exception("operator command failed")
            return _error(args, f"failed ({type(exc).__name__}); see the log for details")
        if outcome.warning:
            print(f"quantumvault: {outcome.warning}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps(outcome.data, default=_json_default, sort_keys=True))
        else:
            print(outcome.human)
            for line in outcome.extra_lines:
                print(line)
        return outcome.code

    return run
