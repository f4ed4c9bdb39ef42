"""Operator CLI: provision wallets and bots, copy trading, emergency stop, server key rotation.

`register(subparsers)` adds the `wallet`, `bot`, `estop`, `keys` and `flags` command groups to the
`quantumvault` parser; each leaf command is a `(settings, args) -> int` like runtime's cmd_*.
Every command takes `--json` and then prints exactly one JSON object on stdout (an error is
`{"error": "..."}`); without it, what it did in one human line. Bad input exits 1 with one line
on stderr and writes nothing.

Where things are:
    output           CliError, the --json / human output and the error path
    context          the database (as the daemon opens it) and the lazily loaded server key ring
    validation       amounts, leverage, percent, markets, addresses
    wallet_commands  wallet create / fund
    wallet_orders    the SignedMsgUserOrders account (swift init-orders, wallet create/upgrade)
    wallet_key_paths wallet upgrade / show / umk-message (V3 keys)
    owner_keys       reading an owner's signature, deriving the owner's keys
    swift_account    the SignedMsgUserOrders account's rent and creation
    bot_commands     bot create / rotate-secret / list / show
    copy_commands    bot publish / subscribe
    grant_commands   bot authorize / revoke (V3 execution grants)
    bot_rows         bot lookups and policy HMACs the bot commands share
    estop_commands   estop set / clear
    key_commands     keys reencrypt
    flags_commands   flags show / set / reset (live Swift flags)
    ops_commands     bot swift/pause/resume/status, signal show, retry list, ious list
    subaccounts      each bot's own Drift sub-account; bot provision / migrate-subaccounts
    faucet           the sandbox faucet client
"""

from __future__ import annotations

import argparse

from operator_cli import (
    bot_commands,
    estop_commands,
    flags_commands,
    key_commands,
    ops_commands,
    subaccounts,
    wallet_commands,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the operator command groups to the `quantumvault` subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="print exactly one JSON object instead of a human line")
    wallet_commands.register(subparsers, common)
    bot_commands.register(subparsers, common)
    ops_commands.register(subparsers, common)  # after bot_commands: it extends the bot group
    subaccounts.register(ops_commands.bot_subparsers(subparsers), common)
    estop_commands.register(subparsers, common)
    key_commands.register(subparsers, common)
    flags_commands.register(subparsers, common)
