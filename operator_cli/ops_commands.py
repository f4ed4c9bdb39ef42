"""Daily operations: Swift and pause switches per bot, states, stories, queues.

Per-bot commands join the existing `bot` group, where the runbook already sends the operator
(`quantumvault bot swift BOT --off`):

    bot swift BOT [--on|--off] [--fallback on|off]   per-bot rollback (trading_bots.swift_*)
    bot pause BOT [--reason TEXT] / bot resume BOT  is_active, paused_reason/_at/_by
    bot status [--wallet ADDR]                      bots with Swift state and last signal

Things that are not a bot get their own small groups:

    signal show ID                  the signal, its trades, each subscriber copy, Swift events
    retry list [--status S|all]     trade_retry_queue (default: pending and running)
    ious list [--status S|all]      pending_profit_shares (default: pending and sending)

A running daemon needs no signal: the bot actor reads its bot row for every signal. Nothing here
needs the server key, and nothing prints a secret (see storage.ops_views).
"""

from __future__ import annotations

import argparse
from typing import Any

from custody.signing_keys import grant_exposure
from operator_cli.bot_rows import require_wallet
from operator_cli.context import opened
from operator_cli.output import CliError, Outcome, command, plain
from operator_cli.validation import MAX_REASON, text_arg
from storage import bot_controls, ops_views
from storage.bots import get_bot
from storage.signals import signal_story

BOT_COMMANDS = ("swift", "pause", "resume", "status")
TOP_COMMANDS = ("signal", "retry", "ious")
ON_OFF = {"on": True, "off": False}


# --- registration --------------------------------------------------------------------------


def bot_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subcommands action of the already registered `bot` group."""
    group = subparsers.choices.get("bot")
    if group is None:
        raise RuntimeError("register the `bot` group (bot_commands) before ops_commands")
    for action in group._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the `bot` group has no subcommands")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the daily-operations commands; call after bot_commands.register."""
    register_ops(bot_subparsers(subparsers), subparsers, common)


def register_ops(bot_sub: argparse._SubParsersAction, top: argparse._SubParsersAction,
                 common: argparse.ArgumentParser) -> None:
    """Add `bot swift|pause|resume|status` to `bot_sub` and `signal`, `retry`, `ious` to `top`."""
    swift = bot_sub.add_parser("swift", parents=[common],
                               help="turn Swift (and its legacy fallback) on or off for a bot")
    swift.add_argument("bot", metavar="BOT")
    swift.add_argument("--on", action="store_true", help="send this bot's orders Swift first")
    swift.add_argument("--off", action="store_true", help="send them on-chain (per-bot rollback)")
    swift.add_argument("--fallback", metavar="on|off",
                       help="whether a failed Swift order may go on-chain")
    swift.set_defaults(func=cmd_bot_swift)
    pause = bot_sub.add_parser("pause", parents=[common], help="skip this bot's signals")
    pause.add_argument("bot", metavar="BOT")
    pause.add_argument("--reason", metavar="TEXT")
    pause.set_defaults(func=cmd_bot_pause)
    resume = bot_sub.add_parser("resume", parents=[common], help="execute its signals again")
    resume.add_argument("bot", metavar="BOT")
    resume.set_defaults(func=cmd_bot_resume)
    status = bot_sub.add_parser("status", parents=[common],
                                help="bots with Swift switches, pause and last signal")
    status.add_argument("--wallet", metavar="ADDR", help="only this wallet's bots")
    status.set_defaults(func=cmd_bot_status)

    signal = top.add_parser("signal", help="one signal's whole story")
    signal_sub = signal.add_subparsers(dest="signal_command", required=True)
    show = signal_sub.add_parser("show", parents=[common],
                                 help="signal, trades, subscriber copies, Swift events")
    show.add_argument("signal_id", metavar="ID")
    show.set_defaults(func=cmd_signal_show)

    retry = top.add_parser("retry", help="the trade retry queue")
    retry_sub = retry.add_subparsers(dest="retry_command", required=True)
    retry_list = retry_sub.add_parser("list", parents=[common],
                                      help="retry jobs (default: pending and running)")
    retry_list.add_argument("--status", metavar="|".join((*ops_views.RETRY_STATUSES, "all")))
    retry_list.add_argument("--bot", metavar="BOT", help="only this bot's jobs")
    retry_list.set_defaults(func=cmd_retry_list)

    ious = top.add_parser("ious", help="profit-share IOUs")
    ious_sub = ious.add_subparsers(dest="ious_command", required=True)
    ious_list = ious_sub.add_parser("list", parents=[common],
                                    help="IOUs (default: pending and sending)")
    ious_list.add_argument("--status", metavar="|".join((*ops_views.IOU_STATUSES, "all")))
    ious_list.set_defaults(func=cmd_ious_list)


# --- argument checks -----------------------------------------------------------------------


def _on_off(text: str | None, name: str) -> bool | None:
    """"on" / "off" to a bool (None when not given), or a CliError."""
    if text is None:
        return None
    value = ON_OFF.get(text.strip().lower())
    if value is None:
        raise CliError(f"{name} must be on or off, not {text!r}")
    return value


def _statuses(text: str | None, allowed: tuple[str, ...],
              default: tuple[str, ...]) -> tuple[str, ...]:
    """--status to the statuses to list, or a CliError."""
    if text is None:
        return default
    value = text.strip().lower()
    if value == "all":
        return allowed
    if value not in allowed:
        raise CliError(f"--status must be one of {', '.join(allowed)} or all, not {text!r}")
    return (value,)


def _word(flag: bool) -> str:
    return "on" if flag else "off"


# --- bot switches ----------------------------------------------------------------------------


@command
def cmd_bot_swift(settings: Any, args: argparse.Namespace) -> Outcome:
    """Turn Swift on or off for one bot (and/or its legacy fallback)."""
    if args.on and args.off:
        raise CliError("give --on or --off, not both")
    fallback = _on_off(args.fallback, "--fallback")
    swift = True if args.on else (False if args.off else None)
    if swift is None and fallback is None:
        raise CliError("nothing to change: give --on, --off or --fallback on|off")
    with opened(settings) as ctx:
        row = bot_controls.set_swift_flags(ctx.db, args.bot.strip(), swift, fallback)
    if row is None:
        raise CliError(f"unknown bot {args.bot}")
    changed = (row["was_swift_enabled"] != row["swift_enabled"]
               or row["was_swift_fallback_enabled"] != row["swift_fallback_enabled"])
    data = {"bot_id": row["id"], "swift_enabled": row["swift_enabled"],
            "swift_fallback_enabled": row["swift_fallback_enabled"], "changed": changed,
            "was": {"swift_enabled": row["was_swift_enabled"],
                    "swift_fallback_enabled": row["was_swift_fallback_enabled"]}}
    human = (f"bot {row['id']}: Swift {_word(row['swift_enabled'])}"
             f" (was {_word(row['was_swift_enabled'])}), legacy fallback"
             f" {_word(row['swift_fallback_enabled'])}"
             f" (was {_word(row['was_swift_fallback_enabled'])}); from its next signal")
    return Outcome(human, data)


@command
def cmd_bot_pause(settings: Any, args: argparse.Namespace) -> Outcome:
    """Pause a bot: its next signals are skipped ("bot_paused") and still routed to followers.

    An operator's pause stops everything, closes included; it also takes over a pause by the
    system (which lets the bot's reduce-only closes run)."""
    reason = text_arg(args.reason, "--reason", MAX_REASON - len("operator: "))
    stored = f"operator: {reason}" if reason else "operator"
    with opened(settings) as ctx:
        bot = get_bot(ctx.db, args.bot.strip())
        if bot is None:
            raise CliError(f"unknown bot {args.bot}")
        row = bot_controls.pause_bot(ctx.db, bot.id, stored)
        current = row or {"id": bot.id, "is_active": False, "paused_reason": bot.paused_reason}
    data = {"bot_id": bot.id, "active": False, "paused_reason": current["paused_reason"],
            "paused_at": current.get("paused_at"), "paused_by": "operator",
            "changed": row is not None}
    human = (f"paused bot {bot.id} ({stored}); its signals are skipped until `bot resume`"
             if row else f"bot {bot.id} was already paused ({bot.paused_reason}); unchanged")
    if row and bot.closes_only:
        human += f" (it was paused by the system: {bot.paused_reason}; now its closes stop too)"
    return Outcome(human, data)


@command
def cmd_bot_resume(settings: Any, args: argparse.Namespace) -> Outcome:
    """Resume a paused bot: clears is_active/paused_reason/paused_at."""
    with opened(settings) as ctx:
        bot = get_bot(ctx.db, args.bot.strip())
        if bot is None:
            raise CliError(f"unknown bot {args.bot}")
        row = bot_controls.resume_bot(ctx.db, bot.id)
    data = {"bot_id": bot.id, "active": True, "paused_reason": None, "changed": row is not None,
            "was_paused_reason": bot.paused_reason if row else None}
    human = (f"resumed bot {bot.id} (was paused: {bot.paused_reason}); it executes from its"
             " next signal" if row else f"bot {bot.id} was not paused; unchanged")
    return Outcome(human, data)


@command
def cmd_bot_status(settings: Any, args: argparse.Namespace) -> Outcome:
    """Bots with their Swift switches, pause state and latest signal, one line each."""
    with opened(settings) as ctx:
        wallet = require_wallet(ctx, args.wallet).address if args.wallet else None
        rows = ops_views.bot_states(ctx.db, wallet)
        _count, _shortest, lapsed_rows = grant_exposure(ctx.db)
    lapsed = {r["bot_id"] for r in lapsed_rows}  # V3: a position open and no usable grant
    views = [{"id": r["id"], "name": r["name"], "market": r["market"],
              "grant_lapsed_with_position": r["id"] in lapsed,
              "wallet": r["wallet_address"], "active": r["is_active"],
              "paused_reason": r["paused_reason"], "paused_at": r["paused_at"],
              "paused_by": r["paused_by"],
              "swift_enabled": r["swift_enabled"],
              "swift_fallback_enabled": r["swift_fallback_enabled"], "follows": r["follows"],
              "last_signal": None if r["last_signal_id"] is None else {
                  "id": r["last_signal_id"], "status": r["last_signal_status"],
                  "reason": r["last_signal_reason"], "received_at": r["last_signal_at"]}}
             for r in rows]
    lines = [_table_row(("BOT", "MARKET", "STATE", "SWIFT", "FALLBACK", "LAST SIGNAL"))]
    for view in views:
        last = view["last_signal"]
        lines.append(_table_row((
            view["id"], view["market"],
            pause_state(view["active"], view["paused_by"], view["paused_reason"])
            + (" GRANT LAPSED WITH A POSITION OPEN" if view["grant_lapsed_with_position"]
               else ""),
            _word(view["swift_enabled"]), _word(view["swift_fallback_enabled"]),
            "-" if last is None else f"{last['status']} {last['received_at']:%Y-%m-%d %H:%M:%S}"
            + (f" ({last['reason']})" if last["reason"] else ""))))
    return Outcome(f"{len(views)} bot(s)", {"bots": views, "count": len(views)},
                   extra_lines=lines if views else [])


def pause_state(active: bool, paused_by: str | None, reason: str | None) -> str:
    """"active", or who paused and why: a system pause still runs the bot's closes."""
    if active:
        return "active"
    if paused_by == "system":
        return f"paused by the system, closes still run ({reason or '-'})"
    return f"paused ({reason or '-'})"


def _table_row(cells: tuple[Any, ...]) -> str:
    widths = (36, 10, 24, 5, 8)
    padded = [str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  ".join(padded + [str(c) for c in cells[len(widths):]])


# --- signals, retry queue, IOUs ----------------------------------------------------------------


@command
def cmd_signal_show(settings: Any, args: argparse.Namespace) -> Outcome:
    """The signal, its trades, each subscriber copy and its trades, and their Swift events."""
    with opened(settings) as ctx:
        story = signal_story(ctx.db, args.signal_id.strip())
        if story is None:
            raise CliError(f"unknown signal {args.signal_id}")
        trades = story["trades"] + [t for copy in story["subscribers"] for t in copy["trades"]]
        ids = sorted({t["swift_order_id"] for t in trades if t.get("swift_order_id")})
        events = ops_views.swift_order_events(ctx.db, ids)
    story["swift_events"] = events
    lines = [f"  trade {t['id']} bot {t['trading_bot_id']}: {t['side']} {t['size']}"
             f" {t['status']} via {t['execution_method']}"
             + (f" swift {t['swift_order_id']} ({t['swift_status']})" if t["swift_order_id"]
                else "")
             + (f" fallback {t['fallback_reason']}" if t["fallback_reason"] else "")
             + (f" error {t['error_message']}" if t["error_message"] else "")
             + ("".join(f"\n    {e['event_type']}" + (f" {e['error_code']}" if e["error_code"]
                                                        else "")
                        for e in events.get(t["swift_order_id"] or "", [])))
             for t in trades]
    copies = story["subscribers"]
    human = (f"signal {story['id']} bot {story['trading_bot_id']} ({story['source']}):"
             f" {story['status']}" + (f" ({story['status_reason']})" if story["status_reason"]
                                      else "")
             + f"; {len(trades)} trade(s), {len(copies)} subscriber cop"
             + ("y" if len(copies) == 1 else "ies")
             + (": " + ", ".join(f"{c['trading_bot_id']} {c['status']}" for c in copies)
                if copies else ""))
    return Outcome(human, story, extra_lines=lines)


@command
def cmd_retry_list(settings: Any, args: argparse.Namespace) -> Outcome:
    """trade_retry_queue jobs, critical first, as the scheduler takes them."""
    statuses = _statuses(args.status, ops_views.RETRY_STATUSES, ("pending", "running"))
    with opened(settings) as ctx:
        if args.bot and get_bot(ctx.db, args.bot.strip()) is None:
            raise CliError(f"unknown bot {args.bot}")
        jobs = ops_views.retry_jobs(ctx.db, statuses, args.bot.strip() if args.bot else None)
    lines = [f"  {j['id']}  bot {j['bot_id']}  {j['market']} {j['side']} {plain(j['size'])}"
             f"  {j['priority']} {j['status']}  attempts {j['attempts']}/{j['max_attempts']}"
             f"  cooldowns {j['cooldown_retries']}  next {j['next_retry_at']:%Y-%m-%d %H:%M:%S}"
             + ("  OUTCOME UNKNOWN" if j["outcome_unknown"] else "")
             + (f"  last error: {j['last_error']}" if j["last_error"] else "")
             for j in jobs]
    return Outcome(f"{len(jobs)} retry job(s) ({', '.join(statuses)})",
                   {"jobs": jobs, "count": len(jobs), "statuses": list(statuses)},
                   extra_lines=lines)


@command
def cmd_ious_list(settings: Any, args: argparse.Namespace) -> Outcome:
    """Profit-share IOUs (pending_profit_shares), oldest first."""
    statuses = _statuses(args.status, ops_views.IOU_STATUSES, ("pending", "sending"))
    with opened(settings) as ctx:
        rows = ops_views.iou_rows(ctx.db, statuses)
    lines = [f"  {r['id']}  {plain(r['amount'])} USDC  subscriber bot {r['subscriber_bot_id']}"
             f" -> {r['creator_wallet_address']}  {r['status']}  attempts {r['attempts']}"
             f"  expires {r['expires_at']:%Y-%m-%d %H:%M}"
             + (f"  last error: {r['last_error']}" if r["last_error"] else "")
             for r in rows]
    return Outcome(f"{len(rows)} IOU(s) ({', '.join(statuses)})",
                   {"ious": rows, "count": len(rows), "statuses": list(statuses)},
                   extra_lines=lines)
