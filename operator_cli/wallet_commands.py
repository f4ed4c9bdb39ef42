"""`wallet create|fund`: a new agent key, sealed, stored, (sandbox) funded; the `wallet` group.

Owner address: the wallets row is keyed by the owner's own Solana address (`--owner ADDR`,
the wallet that signs the UMK message). Without `--owner` the agent's own address is the owner,
which suits operator-run bots and tests; a user-facing deployment passes `--owner`.

Key path: with `--owner-signature-file FILE` (the owner's signature of
"QuantumVault UMK v1\\n<owner>", base58 or hex; `wallet umk-message ADDR` prints it) the agent
key is sealed under the owner's key_privkey only (V3); without it, under the server key ring
(`legacy`). Upgrading, showing and the UMK message are in operator_cli.wallet_key_paths.

Sandbox funding: the wallet is stored first (the key must never be lost to a network error),
then the faucet is called. If the sandbox is unreachable the command says so on stderr and
exits 4 with the wallet created; `wallet fund ADDR` retries.

SignedMsgUserOrders (Swift orders of an authority without it are never placed): on a real venue
`wallet create` ends with operator_cli.wallet_orders' step (rent reported, the account found or
created, else how much SOL to send); `wallet init-orders` is there too.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from solders.keypair import Keypair

from config import Settings
from operator_cli.context import Context, opened
from operator_cli.faucet import FaucetError, fund_agent
from operator_cli.output import EXIT_NOT_FUNDED, CliError, Outcome, command, plain
from operator_cli.owner_keys import owner_subkeys, read_owner_signature
from operator_cli.swift_account import rent_needs
from operator_cli.validation import address_arg, usd_arg
from operator_cli.wallet_key_paths import register_key_paths
from operator_cli.wallet_orders import prepared_for_swift, register_init_orders
from security.agent_keys import seal_agent_privkey, seal_agent_privkey_legacy
from security.errors import InvalidKeyMaterial
from security.keypair_file import read_keypair_file as read_keypair
from security.log_redaction import register_agent_keypair
from storage.wallets import Wallet, find_wallet, insert_wallet, wallet_exists
from venue.process_venue import sandbox_url

DEFAULT_FUND_QUOTE = "10000"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `wallet` command group."""
    wallet = subparsers.add_parser("wallet", help="create and fund wallets (agent keys)")
    sub = wallet.add_subparsers(dest="wallet_command", required=True)
    create = sub.add_parser("create", parents=[common], help="create a wallet and its agent key")
    create.add_argument("--import-key", metavar="FILE",
                        help="Solana keypair JSON (64 numbers) to use as the agent key")
    create.add_argument("--owner", metavar="ADDR",
                        help="the owner's wallet address (default: the agent's own address)")
    create.add_argument("--owner-signature-file", metavar="FILE",
                        help="owner's signature of the UMK message: also seal the key V3")
    create.add_argument("--fund", metavar="USDC", default=DEFAULT_FUND_QUOTE,
                        help="sandbox faucet deposit for the agent (VENUE=sandbox)")
    create.add_argument("--no-fund", action="store_true",
                        help="skip the sandbox faucet (on a real venue: the SignedMsgUserOrders"
                             " check; `wallet init-orders` does it later)")
    create.set_defaults(func=cmd_wallet_create)
    fund = sub.add_parser("fund", parents=[common], help="fund a wallet's agent on the sandbox")
    fund.add_argument("wallet", metavar="ADDR", help="owner address or agent public key")
    fund.add_argument("--quote", metavar="USDC", default=DEFAULT_FUND_QUOTE)
    fund.set_defaults(func=cmd_wallet_fund)
    register_init_orders(sub, common)
    register_key_paths(sub, common)


def read_keypair_file(path: str) -> Keypair:
    """The --import-key file's keypair (see security.keypair_file)."""
    try:
        return read_keypair(path)
    except InvalidKeyMaterial as exc:
        raise CliError(f"--import-key {exc}") from None


def _fund(ctx: Context, wallet: Wallet, quote: Decimal) -> dict[str, Any]:
    """Call the faucet for the wallet's agent; returns what the sandbox reported."""
    answer = fund_agent(sandbox_url(ctx.settings), wallet.agent_public_key, quote)
    return {"quote": plain(quote), "user": answer.get("user"),
            "quote_balance": answer.get("quote_balance"),
            "signed_msg_user_orders": answer.get("signed_msg_user_orders")}


@command
def cmd_wallet_create(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Create (or import) an agent key, seal it, store the wallet, fund it on the sandbox."""
    sandbox = settings.venue == "sandbox" and not args.no_fund
    quote = usd_arg(args.fund, "--fund") if sandbox else None
    keypair = read_keypair_file(args.import_key) if args.import_key else Keypair()
    secret = bytes(keypair)
    register_agent_keypair(secret)
    agent = str(keypair.pubkey())
    owner = address_arg(args.owner, "--owner") if args.owner else agent
    signature = (read_owner_signature(args.owner_signature_file) if args.owner_signature_file
                 else None)
    with opened(settings) as ctx:
        taken = wallet_exists(ctx.db, owner, agent)
        if taken == "address":
            raise CliError(f"wallet {owner} already exists")
        if taken == "agent":
            raise CliError(f"agent key {agent} already belongs to a wallet")
        v3 = legacy = None
        if signature is not None:  # V3 only: no server-key copy the server could sign with
            v3 = seal_agent_privkey(owner_subkeys(owner, signature), secret)
        else:
            legacy = seal_agent_privkey_legacy(ctx.ring, owner, secret)
        wallet = insert_wallet(ctx.db, address=owner, agent_public_key=agent,
                               legacy_envelope=legacy, v3_privkey_envelope=v3)
        data: dict[str, Any] = {
            "wallet": wallet.address, "owner_address": wallet.address,
            "agent_public_key": agent, "owner_is_agent": owner == agent,
            "imported": bool(args.import_key),
            "legacy_key_id": ctx.ring.current_key_id if legacy else None,
            "v3_sealed": v3 is not None, "key_path": wallet.key_path,
            "venue": settings.venue, "funded": None,
            "rent": rent_needs(None).describe(),  # what the agent's accounts cost in SOL
        }
        human = f"created wallet {owner} with agent {agent}"
        if v3 is not None:
            human += (" (V3: agent key sealed under the owner's key only; its bots sign once"
                      " authorized with `bot authorize`)")
        if settings.venue != "sandbox" and not args.no_fund:
            return prepared_for_swift(settings, keypair, Outcome(human, data), v3 is not None)
        if not sandbox:
            return Outcome(human, data)
        try:
            data["funded"] = _fund(ctx, wallet, quote or Decimal(0))
        except FaucetError as exc:
            data["faucet_error"] = str(exc)
            return Outcome(human + "; NOT funded", data, EXIT_NOT_FUNDED,
                           warning=f"wallet {owner} was created but not funded: {exc}; "
                                   f"retry with `quantumvault wallet fund {owner}`")
        data["signed_msg_user_orders"] = (
            "exists" if data["funded"].get("signed_msg_user_orders") else "unknown")
        return Outcome(f"{human}; funded {plain(quote or Decimal(0))} USDC on the sandbox", data)


@command
def cmd_wallet_fund(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Fund an existing wallet's agent from the sandbox faucet."""
    if settings.venue != "sandbox":
        raise CliError(f"wallet fund works on VENUE=sandbox only (VENUE={settings.venue})")
    quote = usd_arg(args.quote, "--quote")
    with opened(settings) as ctx:
        wallet = find_wallet(ctx.db, args.wallet)
        if wallet is None:
            raise CliError(f"unknown wallet {args.wallet}")
        try:
            funded = _fund(ctx, wallet, quote)
        except FaucetError as exc:
            raise CliError(str(exc)) from None
    data = {"wallet": wallet.address, "agent_public_key": wallet.agent_public_key,
            "funded": funded}
    return Outcome(f"funded agent {wallet.agent_public_key} of wallet {wallet.address} "
                   f"with {plain(quote)} USDC on the sandbox", data)
