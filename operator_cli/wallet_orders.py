"""`wallet init-orders` and the SignedMsgUserOrders step of `wallet create` and `wallet upgrade`.

Swift orders of an authority without that account are never placed. The sandbox faucet
creates it with the User. On a real venue `wallet create` and `wallet upgrade` report the rent
the agent's accounts need in SOL, find the account (and keep it) or, when the agent can pay (an
imported, funded key), create it; otherwise they say how much SOL to send (exit 0: the wallet is
created or upgraded), and `wallet init-orders ADDR` creates it once the SOL is there (see
operator_cli.swift_account). If the venue cannot be read, they exit 4 with the wallet created or
upgraded.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from solders.keypair import Keypair

from operator_cli.bot_rows import require_wallet
from operator_cli.context import opened
from operator_cli.output import EXIT_NOT_FUNDED, EXIT_OK, CliError, Outcome, command
from operator_cli.owner_keys import agent_secret_for_cli, read_owner_signature
from operator_cli.swift_account import (
    VenueUnreachable,
    prepare_signed_msg_orders,
    rent_needs,
    sol,
    venue_rpc,
)
from security.log_redaction import register_agent_keypair


def register_init_orders(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `wallet init-orders` to the `wallet` group's subcommands."""
    init = sub.add_parser("init-orders", parents=[common],
                          help="create the agent's SignedMsgUserOrders account (needed for Swift)")
    init.add_argument("wallet", metavar="ADDR", help="owner address or agent public key")
    init.add_argument("--owner-signature-file", metavar="FILE",
                      help="a V3 wallet's owner signature (its agent key is sealed under it)")
    init.set_defaults(func=cmd_wallet_init_orders)


def _init_orders_command(wallet: str, v3: bool) -> str:
    """The command that creates the account later (a V3 agent key opens only with the owner's
    signature)."""
    return f"quantumvault wallet init-orders {wallet}" + (
        " --owner-signature-file FILE" if v3 else "")


def _then(done: Outcome, suffix: str, code: int = EXIT_OK, warning: str | None = None) -> Outcome:
    """`done` followed by one more step: its line extended, the worse exit code, both warnings."""
    warnings = [text for text in (done.warning, warning) if text]
    return dataclasses.replace(done, human=done.human + suffix, code=max(done.code, code),
                               warning="; ".join(warnings) or None)


def prepared_for_swift(settings: Any, keypair: Keypair, done: Outcome, v3: bool) -> Outcome:
    """A real venue: report the rent, find SignedMsgUserOrders or create it if the agent can pay
    for it; `done` is what the command did before (its data names the wallet)."""
    agent = str(keypair.pubkey())
    data = done.data
    later = _init_orders_command(data["wallet"], v3)
    profile, rpc = venue_rpc(settings)
    try:
        report = prepare_signed_msg_orders(rpc, profile, keypair)
    except VenueUnreachable as exc:
        data["rent"] = rent_needs(None).describe()
        data["signed_msg_user_orders"] = "unknown"
        return _then(done, "; SignedMsgUserOrders NOT checked", EXIT_NOT_FUNDED,
                     f"{exc}; send at least {data['rent']['total_sol']} SOL to the agent "
                     f"{agent}, then run `{later}`")
    finally:
        rpc.close()
    data["rent"] = report["rent"]
    data["signed_msg_user_orders"] = report["state"]
    data["signed_msg_user_orders_report"] = report
    total = report["rent"]["total_sol"]
    if report["state"] in ("exists", "created"):
        return _then(done, f"; SignedMsgUserOrders {report['state']} (rent for it, a "
                           f"sub-account and UserStats: {total} SOL)")
    if report["state"] == "needs_sol":  # a new agent holds nothing: expected, not a failure
        return _then(done, "; NOT ready for Swift until its SOL arrives", warning=(
            f"the agent {agent} holds {report['balance_sol']} SOL; its accounts need {total} "
            f"SOL in rent and fees (SignedMsgUserOrders alone "
            f"{sol(report['rent']['signed_msg_user_orders'])}): send it, then run `{later}`"))
    return _then(done, f"; SignedMsgUserOrders {report['state']}", EXIT_NOT_FUNDED,
                 f"creating SignedMsgUserOrders {report['state']}: {report.get('error')}; "
                 f"retry with `{later}`")


@command
def cmd_wallet_init_orders(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create the wallet agent's SignedMsgUserOrders account on the venue (idempotent)."""
    signature = (read_owner_signature(args.owner_signature_file)
                 if args.owner_signature_file else None)
    with opened(settings) as ctx:
        wallet = require_wallet(ctx, args.wallet)
        secret = agent_secret_for_cli(ctx, wallet, signature)
    register_agent_keypair(secret)
    keypair = Keypair.from_bytes(secret)
    profile, rpc = venue_rpc(settings)
    try:
        report = prepare_signed_msg_orders(rpc, profile, keypair)
    except VenueUnreachable as exc:
        raise CliError(str(exc)) from None
    finally:
        rpc.close()
    data = {"wallet": wallet.address, "agent_public_key": wallet.agent_public_key, **report}
    if report["state"] in ("exists", "created"):
        return Outcome(f"SignedMsgUserOrders of agent {wallet.agent_public_key}: "
                       f"{report['state']}", data)
    if report["state"] == "needs_sol":
        raise CliError(f"the agent {wallet.agent_public_key} holds {report['balance_sol']} SOL;"
                       f" it needs {report['missing_sol']} SOL more for SignedMsgUserOrders")
    return Outcome(f"SignedMsgUserOrders of agent {wallet.agent_public_key}: {report['state']}",
                   data, EXIT_NOT_FUNDED,
                   warning=f"the transaction {report['state']}: {report.get('error')}")
