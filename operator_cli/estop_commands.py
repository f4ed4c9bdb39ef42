"""`estop set|clear (--wallet ADDR|--global) [--flatten] [--reason TEXT]`: the operator's switch.

`set` refuses every new order of the wallet (or of everyone) from the next pre-trade check on:
the trade guard reads these flags from the database before each order, and a NOTIFY tells a
running daemon at once. `--flatten` records a stop-and-flatten: the flatten procedure (bot
actors) then closes open positions reduce-only under this stop's id. This command needs no
server key, so it works even when the key cannot be loaded.
"""

from __future__ import annotations

import argparse
from typing import Any

from operator_cli.bot_rows import require_wallet
from operator_cli.context import opened
from operator_cli.output import CliError, Outcome, command
from operator_cli.validation import MAX_REASON, text_arg
from storage import emergency_stops


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `estop set` and `estop clear`."""
    group = subparsers.add_parser("estop", help="emergency stop, per wallet or global")
    sub = group.add_subparsers(dest="estop_command", required=True)
    for name, func, text in (("set", cmd_estop_set, "stop every new order"),
                             ("clear", cmd_estop_clear, "lift a stop")):
        parser = sub.add_parser(name, parents=[common], help=text)
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--wallet", metavar="ADDR")
        scope.add_argument("--global", dest="global_scope", action="store_true")
        if name == "set":
            parser.add_argument("--flatten", action="store_true",
                                help="also close open positions (reduce-only)")
            parser.add_argument("--reason", metavar="TEXT")
        parser.set_defaults(func=func)


@command
def cmd_estop_set(settings: Any, args: argparse.Namespace) -> Outcome:
    """Set a global or wallet emergency stop (optionally stop-and-flatten)."""
    reason = text_arg(args.reason, "--reason", MAX_REASON)
    with opened(settings) as ctx:
        if args.global_scope:
            record = emergency_stops.set_global_stop(ctx.db, flatten=args.flatten, reason=reason)
            target = "global emergency stop"
        else:
            wallet = require_wallet(ctx, args.wallet)
            found = emergency_stops.set_wallet_stop(ctx.db, wallet.address,
                                                    flatten=args.flatten, reason=reason)
            if found is None:
                raise CliError(f"unknown wallet {args.wallet}")
            record = found
            target = f"emergency stop of wallet {wallet.address}"
    what = "stop and flatten: open positions close reduce-only" if args.flatten else "stop"
    data = {"scope": record.scope, "wallet": record.wallet_address, "active": True,
            "mode": record.mode, "stop_id": record.state.stop_id, "reason": record.reason}
    because = f"; reason: {reason}" if reason else ""
    return Outcome(f"{target} SET ({what}); no new order leaves{because}", data)


@command
def cmd_estop_clear(settings: Any, args: argparse.Namespace) -> Outcome:
    """Clear a global or wallet emergency stop."""
    with opened(settings) as ctx:
        if args.global_scope:
            was = emergency_stops.clear_global_stop(ctx.db)
            target, address = "global emergency stop", None
        else:
            wallet = require_wallet(ctx, args.wallet)
            was = bool(emergency_stops.clear_wallet_stop(ctx.db, wallet.address))
            target, address = f"emergency stop of wallet {wallet.address}", wallet.address
    data = {"scope": "global" if address is None else "wallet", "wallet": address,
            "active": False, "was_set": was}
    state = "cleared" if was else "was not set; nothing to clear"
    return Outcome(f"{target} {state}", data)
