"""`wallet create`, `wallet fund`, `wallet init-orders`: a new agent key, sealed, stored,
(sandbox) funded, and ready for Swift.

Owner address: the wallets row is keyed by the owner's own Solana address (`--owner ADDR`,
the wallet that signs the UMK message). Without `--owner` the agent's own address is the owner,
which suits operator-run bots and tests; a user-facing deployment passes `--owner`.

The agent private key is always sealed under the server key ring (the legacy path subscriber
bots need: their owners have no session during routing). With `--owner-signature-file FILE`
(the owner's signature of "QuantumVault UMK v1\\n<owner>", base58 or hex) it is also sealed
under the owner's key_privkey (V3). The signature is read from a file, never argv, because
argv is visible to every user in /proc and whoever has the signature can derive the UMK.

Sandbox funding: the wallet is stored first (the key must never be lost to a network error),
then the faucet is called. If the sandbox is unreachable the command says so on stderr and
exits 4 with the wallet created; `wallet fund ADDR` retries.

SignedMsgUserOrders (Swift orders of an authority without it are never placed): the sandbox
faucet creates it with the User. On a real venue `wallet create` reports the rent the agent's
accounts need in SOL, reads the agent's balance and creates the account when the agent can pay
(an imported, funded key); otherwise it says how much SOL to send (exit 0: the wallet is
created), and `wallet init-orders ADDR` creates it once the SOL is there (see
operator_cli.swift_account). If the venue cannot be read, it exits 4 with the wallet created.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path
from typing import Any

from solders.keypair import Keypair

from operator_cli.context import Context, opened
from operator_cli.faucet import FaucetError, fund_agent
from operator_cli.output import EXIT_NOT_FUNDED, CliError, Outcome, command, plain
from operator_cli.swift_account import (
    VenueUnreachable,
    prepare_signed_msg_orders,
    rent_needs,
    sol,
    venue_rpc,
)
from operator_cli.validation import address_arg, usd_arg
from security.agent_keys import (
    open_agent_privkey_legacy,
    seal_agent_privkey,
    seal_agent_privkey_legacy,
)
from security.errors import InvalidKeyMaterial, SignatureRefused
from security.key_hierarchy import derive_subkeys, derive_umk, parse_signature
from security.keypair_file import read_keypair_file as read_keypair
from security.log_redaction import register_agent_keypair, register_secret
from storage.wallets import (
    Wallet,
    find_wallet,
    insert_wallet,
    legacy_agent_envelope,
    wallet_exists,
)
from venue.process_venue import sandbox_url

DEFAULT_FUND_QUOTE = "10000"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `wallet create` and `wallet fund`."""
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
    init = sub.add_parser("init-orders", parents=[common],
                          help="create the agent's SignedMsgUserOrders account (needed for Swift)")
    init.add_argument("wallet", metavar="ADDR", help="owner address or agent public key")
    init.set_defaults(func=cmd_wallet_init_orders)


def read_keypair_file(path: str) -> Keypair:
    """The --import-key file's keypair (see security.keypair_file)."""
    try:
        return read_keypair(path)
    except InvalidKeyMaterial as exc:
        raise CliError(f"--import-key {exc}") from None


def _read_signature(path: str) -> bytes:
    """The owner's signature from a file (base58 or 128 hex characters)."""
    try:
        text = Path(path).read_text()[:1024]
    except (OSError, UnicodeDecodeError):
        raise CliError(f"cannot read --owner-signature-file {path!r}") from None
    signature = parse_signature(text)
    register_secret(signature)
    return signature


def _fund(ctx: Context, wallet: Wallet, quote: Decimal) -> dict[str, Any]:
    """Call the faucet for the wallet's agent; returns what the sandbox reported."""
    answer = fund_agent(sandbox_url(ctx.settings), wallet.agent_public_key, quote)
    return {"quote": plain(quote), "user": answer.get("user"),
            "quote_balance": answer.get("quote_balance"),
            "signed_msg_user_orders": answer.get("signed_msg_user_orders")}


@command
def cmd_wallet_create(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create (or import) an agent key, seal it, store the wallet, fund it on the sandbox."""
    sandbox = settings["VENUE"] == "sandbox" and not args.no_fund
    quote = usd_arg(args.fund, "--fund") if sandbox else None
    keypair = read_keypair_file(args.import_key) if args.import_key else Keypair()
    secret = bytes(keypair)
    register_agent_keypair(secret)
    agent = str(keypair.pubkey())
    owner = address_arg(args.owner, "--owner") if args.owner else agent
    signature = _read_signature(args.owner_signature_file) if args.owner_signature_file else None
    with opened(settings) as ctx:
        taken = wallet_exists(ctx.db, owner, agent)
        if taken == "address":
            raise CliError(f"wallet {owner} already exists")
        if taken == "agent":
            raise CliError(f"agent key {agent} already belongs to a wallet")
        v3 = None
        if signature is not None:
            try:
                subkeys = derive_subkeys(derive_umk(owner, signature))
            except SignatureRefused:
                raise CliError("--owner-signature-file does not verify: it must be the owner's "
                               f"signature of the UMK message for {owner}") from None
            v3 = seal_agent_privkey(subkeys, secret)
        legacy = seal_agent_privkey_legacy(ctx.ring, owner, secret)
        wallet = insert_wallet(ctx.db, address=owner, agent_public_key=agent,
                               legacy_envelope=legacy, v3_privkey_envelope=v3)
        data: dict[str, Any] = {
            "wallet": wallet.address, "owner_address": wallet.address,
            "agent_public_key": agent, "owner_is_agent": owner == agent,
            "imported": bool(args.import_key), "legacy_key_id": ctx.ring.current_key_id,
            "v3_sealed": v3 is not None, "venue": settings["VENUE"], "funded": None,
            "rent": rent_needs(None).describe(),  # what the agent's accounts cost in SOL
        }
        human = f"created wallet {owner} with agent {agent}"
        if v3 is not None:
            human += " (agent key sealed under the server key and the owner's key)"
        if settings["VENUE"] != "sandbox" and not args.no_fund:
            return _prepared_for_swift(settings, keypair, human, data)
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


def _prepared_for_swift(settings: Any, keypair: Keypair, human: str,
                        data: dict[str, Any]) -> Outcome:
    """A real venue: report the rent, create SignedMsgUserOrders if the agent can pay for it."""
    agent = str(keypair.pubkey())
    profile, rpc = venue_rpc(settings)
    try:
        report = prepare_signed_msg_orders(rpc, profile, keypair)
    except VenueUnreachable as exc:
        data["rent"] = rent_needs(None).describe()
        data["signed_msg_user_orders"] = "unknown"
        return Outcome(human + "; SignedMsgUserOrders NOT checked", data, EXIT_NOT_FUNDED,
                       warning=f"{exc}; send at least {data['rent']['total_sol']} SOL to the "
                               f"agent {agent}, then run `quantumvault wallet init-orders "
                               f"{data['wallet']}`")
    finally:
        rpc.close()
    data["rent"] = report["rent"]
    data["signed_msg_user_orders"] = report["state"]
    data["signed_msg_user_orders_report"] = report
    total = report["rent"]["total_sol"]
    if report["state"] in ("exists", "created"):
        return Outcome(f"{human}; SignedMsgUserOrders {report['state']} (rent for it, a "
                       f"sub-account and UserStats: {total} SOL)", data)
    if report["state"] == "needs_sol":  # a new agent holds nothing: expected, not a failure
        return Outcome(human + "; NOT ready for Swift until its SOL arrives", data,
                       warning=f"the agent {agent} holds {report['balance_sol']} SOL; its "
                               f"accounts need {total} SOL in rent and fees (SignedMsgUserOrders "
                               f"alone {sol(report['rent']['signed_msg_user_orders'])}): send "
                               f"it, then run `quantumvault wallet init-orders "
                               f"{data['wallet']}`")
    return Outcome(human + f"; SignedMsgUserOrders {report['state']}", data, EXIT_NOT_FUNDED,
                   warning=f"creating SignedMsgUserOrders {report['state']}: "
                           f"{report.get('error')}; retry with `quantumvault wallet "
                           f"init-orders {data['wallet']}`")


@command
def cmd_wallet_fund(settings: Any, args: argparse.Namespace) -> Outcome:
    """Fund an existing wallet's agent from the sandbox faucet."""
    if settings["VENUE"] != "sandbox":
        raise CliError(f"wallet fund works on VENUE=sandbox only (VENUE={settings['VENUE']})")
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


@command
def cmd_wallet_init_orders(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create the wallet agent's SignedMsgUserOrders account on the venue (idempotent)."""
    with opened(settings) as ctx:
        wallet = find_wallet(ctx.db, args.wallet)
        if wallet is None:
            raise CliError(f"unknown wallet {args.wallet}")
        envelope = legacy_agent_envelope(ctx.db, wallet.address)
        if envelope is None:
            raise CliError(f"wallet {wallet.address} has no agent key sealed under the server key")
        secret = open_agent_privkey_legacy(ctx.ring, wallet.address, envelope)
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
