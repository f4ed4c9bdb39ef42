"""`flags show|set|reset`: the live Swift flags, changed while the daemon runs.

    flags show [--history N]                  every live flag: value, where it comes from, who
                                              set it and when; the latest changes
    flags set NAME VALUE [--reason TEXT]      store a value (e.g. `flags set SWIFT_ENABLED false`)
    flags reset NAME [--reason TEXT]          drop it: the environment's value applies again

The environment gives the start values; a stored value overrides it, in this daemon and after
restarts, until reset. A change is one transaction (the value, a `runtime_flag_changes` row with
who and when, a NOTIFY), and the daemon's flags actor applies it to the next order without a
restart. VALUE is parsed like the environment variable (true/false, 0..100, a comma-separated
market list; an empty list is every market). Who: `--by`, else the login (SUDO_USER first).
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Any

from config.settings import SETTINGS, Settings
from operator_cli.context import opened
from operator_cli.output import CliError, Outcome, command
from operator_cli.validation import MAX_REASON, market_arg, text_arg
from storage.flags import flag_changes, reset_flag, set_flag, stored_flags
from trading.routing import LIVE_FLAGS

MARKETS_FLAG = "SWIFT_SUPPORTED_MARKETS"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `flags show`, `flags set` and `flags reset`."""
    flags = subparsers.add_parser("flags", help="live Swift flags (no restart)")
    sub = flags.add_subparsers(dest="flags_command", required=True)
    show = sub.add_parser("show", parents=[common], help="the live flags and recent changes")
    show.add_argument("--history", type=int, default=10, metavar="N",
                      help="how many recent changes to list (default 10)")
    show.set_defaults(func=cmd_flags_show)
    names = ", ".join(LIVE_FLAGS)
    set_ = sub.add_parser("set", parents=[common], help="change a live flag now")
    set_.add_argument("name", metavar="NAME", help=f"one of {names}")
    set_.add_argument("value", metavar="VALUE", help="as the environment variable takes it")
    _who(set_)
    set_.set_defaults(func=cmd_flags_set)
    reset = sub.add_parser("reset", parents=[common],
                           help="drop a stored flag: the environment's value applies again")
    reset.add_argument("name", metavar="NAME", help=f"one of {names}")
    _who(reset)
    reset.set_defaults(func=cmd_flags_reset)


def _who(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar="TEXT", help="why (kept with the change)")
    parser.add_argument("--by", metavar="WHO", help="who changes it (default: your login)")


def _name(text: str) -> str:
    name = text.strip().upper()
    if name not in LIVE_FLAGS:
        raise CliError(f"{text!r} is not a live flag (one of {', '.join(LIVE_FLAGS)})")
    return name


def _parse(name: str, text: str) -> Any:
    """VALUE as the daemon would parse the environment variable, or a CliError."""
    setting = next(s for s in SETTINGS if s.name == name)
    try:
        value = setting.parse(text)
    except ValueError as exc:
        raise CliError(f"invalid {name} value {text!r}: {exc}") from None
    if name == MARKETS_FLAG:
        value = tuple(dict.fromkeys(market_arg(m)[0] for m in value))
    return value


def _changed_by(args: argparse.Namespace) -> str:
    who = text_arg(args.by, "--by", 200)
    if who:
        return who
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {login})" if sudo and sudo != login else login


def _shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(value) or "(every market)"
    return str(value)


@command
def cmd_flags_show(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Every live flag with its value and source, and the latest changes."""
    if not 0 <= args.history <= 1000:
        raise CliError("--history must be within 0..1000")
    with opened(settings) as ctx:
        stored = stored_flags(ctx.db)
        changes = flag_changes(ctx.db, args.history) if args.history else []
    flags: dict[str, Any] = {}
    lines = []
    for name in LIVE_FLAGS:
        start = settings.values[name]
        row = stored.get(name)
        value = row.value if row else start
        flags[name] = {"value": _shown(value), "source": "database" if row else "environment",
                       "environment_value": _shown(start),
                       "updated_by": row.updated_by if row else None,
                       "updated_at": row.updated_at if row else None}
        origin = (f"set by {row.updated_by} at {row.updated_at:%Y-%m-%d %H:%M:%S %Z}"
                  if row else "from the environment")
        lines.append(f"{name}={_text(value)}  ({origin})")
    data = {"flags": flags, "changes": changes}
    extra = [f"  {c['changed_at']:%Y-%m-%d %H:%M:%S} {c['flag']}: "
             f"{'env' if c['old_value'] is None else _text(c['old_value'])} -> "
             f"{'env' if c['new_value'] is None else _text(c['new_value'])} by "
             f"{c['changed_by']}" + (f" ({c['reason']})" if c["reason"] else "")
             for c in changes]
    if extra:
        extra.insert(0, "recent changes:")
    return Outcome(lines[0], data, extra_lines=lines[1:] + extra)


@command
def cmd_flags_set(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Store a live flag's value; the daemon applies it to its next order."""
    name = _name(args.name)
    value = _parse(name, args.value)
    reason = text_arg(args.reason, "--reason", MAX_REASON)
    by = _changed_by(args)
    with opened(settings) as ctx:
        previous = set_flag(ctx.db, name, value, by, reason)
    before = previous if previous is not None else settings.values[name]
    data = {"flag": name, "value": _shown(value), "previous": _shown(before),
            "previous_source": "environment" if previous is None else "database",
            "changed_by": by, "reason": reason}
    return Outcome(f"{name}={_text(value)} (was {_text(before)}); the running daemon applies it"
                   " to its next order", data)


@command
def cmd_flags_reset(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Drop a stored flag value: the environment's start value applies again."""
    name = _name(args.name)
    reason = text_arg(args.reason, "--reason", MAX_REASON)
    by = _changed_by(args)
    with opened(settings) as ctx:
        was_set = reset_flag(ctx.db, name, by, reason)
    data = {"flag": name, "reset": was_set, "value": _shown(settings.values[name]),
            "source": "environment", "changed_by": by, "reason": reason}
    human = (f"{name} is back to the environment's value {_text(settings.values[name])}" if was_set
             else f"{name} had no stored value (environment's: {_text(settings.values[name])})")
    return Outcome(human, data)
