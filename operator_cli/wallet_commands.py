"""`wallet create`, `wallet fund`, `wallet init-orders`: a new agent key, sealed, stored,
(sandbox) funded, and ready for Swift.

Owner address: the wallets row is keyed by the owner's own Solana address (`--owner ADDR`,
the wallet that signs the UMK message). Without `--owner` the agent's own address is the owner,
which suits operator-run bots and tests; a user-facing deployment passes `--owner`.

Key paths (issue 13). With `--owner-signature-file FILE` (the owner's signature of
"QuantumVault UMK v1\\n<owner>", base58 or hex; `wallet umk-message ADDR` prints it) the agent
key is sealed under the owner's key_privkey only (V3): the server key alone can no longer reach
it, and the wallet's bots sign only through an execution grant (`bot authorize`). Without it
the key is sealed under the server key ring (`legacy`). `wallet upgrade ADDR
--owner-signature-file FILE` moves a legacy wallet to V3 (and erases the server-key copy);
`wallet show [ADDR]` labels each wallet and says which still depend on the legacy key path
(LEGACY_KEY_PATH). The signature is read from a file, never argv, because argv is visible to
every user in /proc and whoever has the signature can derive the UMK.

Sandbox funding: the wallet is stored first (the key must never be lost to a network error),
then the faucet is called. If the sandbox is unreachable the command says so on stderr and
exits 4 with the wallet created; `wallet fund ADDR` retries.

SignedMsgUserOrders (Swift orders of an authority without it are never placed): the sandbox
faucet creates it with the User. On a real venue `wallet create` and `wallet upgrade` report the
rent the agent's accounts need in SOL, find the account (and keep it) or, when the agent can pay
(an imported, funded key), create it; otherwise they say how much SOL to send (exit 0: the wallet
is created or upgraded), and `wallet init-orders ADDR` creates it once the SOL is there (see
operator_cli.swift_account). If the venue cannot be read, they exit 4 with the wallet created or
upgraded.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from solders.keypair import Keypair

from operator_cli.context import Context, opened
from operator_cli.faucet import FaucetError, fund_agent
from operator_cli.output import EXIT_NOT_FUNDED, EXIT_OK, CliError, Outcome, command, plain
from operator_cli.owner_keys import agent_secret_for_cli, owner_subkeys, read_owner_signature
from operator_cli.swift_account import (
    VenueUnreachable,
    prepare_signed_msg_orders,
    rent_needs,
    sol,
    venue_rpc,
)
from operator_cli.validation import address_arg, usd_arg
from security.agent_keys import (
    open_agent_privkey,
    open_agent_privkey_legacy,
    seal_agent_privkey,
    seal_agent_privkey_legacy,
)
from security.errors import InvalidKeyMaterial, SecurityError
from security.key_hierarchy import (
    umk_message,
)
from security.keypair_file import read_keypair_file as read_keypair
from security.log_redaction import register_agent_keypair
from security.signing_keys import legacy_path_on
from storage.bots import grant_row, list_bots
from storage.wallets import (
    Wallet,
    find_wallet,
    insert_wallet,
    list_wallets,
    upgrade_to_v3,
    wallet_exists,
    wallet_keys,
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
    init.add_argument("--owner-signature-file", metavar="FILE",
                      help="a V3 wallet's owner signature (its agent key is sealed under it)")
    init.set_defaults(func=cmd_wallet_init_orders)
    upgrade = sub.add_parser("upgrade", parents=[common],
                             help="move a legacy wallet to V3 (agent key under the owner's UMK)")
    upgrade.add_argument("wallet", metavar="ADDR", help="owner address or agent public key")
    upgrade.add_argument("--owner-signature-file", metavar="FILE", required=True,
                         help="owner's signature of the UMK message (`wallet umk-message`)")
    upgrade.set_defaults(func=cmd_wallet_upgrade)
    show = sub.add_parser("show", parents=[common],
                          help="key path of one wallet or all (legacy or V3) and its grants")
    show.add_argument("wallet", metavar="ADDR", nargs="?",
                      help="owner address or agent public key (default: every wallet)")
    show.set_defaults(func=cmd_wallet_show)
    message = sub.add_parser("umk-message", parents=[common],
                             help="the exact text the owner signs (its signature is the key)")
    message.add_argument("owner", metavar="ADDR")
    message.set_defaults(func=cmd_wallet_umk_message)


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
def cmd_wallet_create(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create (or import) an agent key, seal it, store the wallet, fund it on the sandbox."""
    sandbox = settings["VENUE"] == "sandbox" and not args.no_fund
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
            "venue": settings["VENUE"], "funded": None,
            "rent": rent_needs(None).describe(),  # what the agent's accounts cost in SOL
        }
        human = f"created wallet {owner} with agent {agent}"
        if v3 is not None:
            human += (" (V3: agent key sealed under the owner's key only; its bots sign once"
                      " authorized with `bot authorize`)")
        if settings["VENUE"] != "sandbox" and not args.no_fund:
            return _prepared_for_swift(settings, keypair, Outcome(human, data), v3 is not None)
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


def _prepared_for_swift(settings: Any, keypair: Keypair, done: Outcome, v3: bool) -> Outcome:
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
    signature = (read_owner_signature(args.owner_signature_file)
                 if args.owner_signature_file else None)
    with opened(settings) as ctx:
        wallet = find_wallet(ctx.db, args.wallet)
        if wallet is None:
            raise CliError(f"unknown wallet {args.wallet}")
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


@command
def cmd_wallet_upgrade(settings: Any, args: argparse.Namespace) -> Outcome:
    """Move a legacy wallet to V3: seal its agent key under the owner's UMK, erase the server-key
    copy; its bots then sign only through execution grants. On a real venue, also find or create
    the agent's SignedMsgUserOrders, as `wallet create` does (run again, it finishes that step)."""
    signature = read_owner_signature(args.owner_signature_file)
    with opened(settings) as ctx:
        wallet = find_wallet(ctx.db, args.wallet.strip())
        if wallet is None:
            raise CliError(f"unknown wallet {args.wallet}")
        subkeys = owner_subkeys(wallet.address, signature)
        keys = wallet_keys(ctx.db, wallet.address)
        assert keys is not None
        if keys.v3_envelope is not None:
            try:
                secret = open_agent_privkey(subkeys, keys.v3_envelope)
            except SecurityError:
                raise CliError("the owner's key does not open this wallet's V3 agent key; "
                               "nothing was changed") from None
            v3 = keys.v3_envelope
        elif keys.legacy_envelope is not None:
            secret = open_agent_privkey_legacy(ctx.ring, wallet.address, keys.legacy_envelope)
            v3 = seal_agent_privkey(subkeys, secret)
        else:
            raise CliError(f"wallet {wallet.address} has no agent key")
        register_agent_keypair(secret)
        if str(Keypair.from_bytes(secret).pubkey()) != wallet.agent_public_key:
            raise CliError("the stored agent key does not match the wallet's agent; nothing "
                           "was changed")
        changed = keys.legacy_envelope is not None
        if changed and not upgrade_to_v3(ctx.db, wallet.address, keys.legacy_envelope, v3):
            raise CliError("the wallet changed meanwhile; nothing was changed, run it again")
        bot_ids = [b.id for b in list_bots(ctx.db, wallet.address)]
    data = {"wallet": wallet.address, "agent_public_key": wallet.agent_public_key,
            "key_path": "v3", "was": wallet.key_path, "changed": changed,
            "bots_needing_grant": bot_ids}
    done = _upgraded(wallet.address, changed, data)
    if settings["VENUE"] == "sandbox":  # the faucet creates it there (`wallet fund`)
        return done
    return _prepared_for_swift(settings, Keypair.from_bytes(secret), done, True)


def _upgraded(address: str, changed: bool, data: dict[str, Any]) -> Outcome:
    """What `wallet upgrade` did to the key path, and what the wallet's bots need next."""
    if not changed:
        return Outcome(f"wallet {address} is already V3; unchanged", data)
    bots = data["bots_needing_grant"]
    warning = (f"{len(bots)} bot(s) of this wallet sign nothing until authorized: "
               "`quantumvault bot authorize BOT --owner-signature-file FILE`") if bots else None
    return Outcome(f"upgraded wallet {address} to V3 (agent key sealed under the owner's key;"
                   " the server-key copy is erased)", data, warning=warning)


def grant_view(wallet: Wallet, bot_id: str, legacy_on: bool, db: Any) -> dict[str, Any]:
    """One bot's grant as the operator sees it (no envelope, no MAC): state and times."""
    grant = grant_row(db, bot_id)
    assert grant is not None
    now = datetime.now(UTC)
    if not wallet.is_v3:
        state = "legacy (server key)" if legacy_on else "legacy, refused (LEGACY_KEY_PATH=off)"
    elif grant.envelope is None:
        state = "revoked" if grant.revoked_at else "none"
    elif grant.expires_at is None or not grant.execution_active:
        state = "invalid"
    else:
        state = "active" if grant.expires_at > now else "expired"
    return {"state": state, "expires_at": grant.expires_at, "granted_at": grant.granted_at,
            "revoked_at": grant.revoked_at}


def wallet_view(ctx: Context, wallet: Wallet) -> dict[str, Any]:
    """A wallet's public facts, key path and the grants of its bots."""
    legacy_on = legacy_path_on(ctx.settings)
    bots = [{"bot_id": b.id, "name": b.name, "follows": b.source_published_bot_id,
             "grant": grant_view(wallet, b.id, legacy_on, ctx.db)}
            for b in list_bots(ctx.db, wallet.address)]
    return {"wallet": wallet.address, "agent_public_key": wallet.agent_public_key,
            "key_path": wallet.key_path, "label": "v3" if wallet.is_v3 else "legacy",
            "depends_on_legacy_key_path": not wallet.is_v3,
            "server_key_copy_stored": wallet.has_legacy_key,
            "emergency_stop": wallet.emergency_stop_mode if wallet.emergency_stop_triggered
            else "none", "bots": bots}


@command
def cmd_wallet_show(settings: Any, args: argparse.Namespace) -> Outcome:
    """Key path (legacy or V3) of one wallet or every wallet, and which still need the legacy
    path: what LEGACY_KEY_PATH=off would stop."""
    with opened(settings) as ctx:
        if args.wallet:
            wallet = find_wallet(ctx.db, args.wallet.strip())
            if wallet is None:
                raise CliError(f"unknown wallet {args.wallet}")
            found = [wallet]
        else:
            found = list_wallets(ctx.db)
        views = [wallet_view(ctx, w) for w in found]
    mode = settings["LEGACY_KEY_PATH"]
    dependent = [v["wallet"] for v in views if v["depends_on_legacy_key_path"]]
    lines = []
    for view in views:
        grants = ", ".join(f"{b['bot_id']} {b['grant']['state']}" for b in view["bots"])
        lines.append(f"  {view['wallet']}  {view['label']}"
                     + ("  (depends on the legacy key path)" if view["depends_on_legacy_key_path"]
                        else "") + (f"  bots: {grants}" if grants else ""))
    data: dict[str, Any] = {"legacy_key_path": mode, "legacy_dependent": dependent,
                            "count": len(views)}
    if args.wallet:
        data.update(views[0])
        human = (f"wallet {views[0]['wallet']}: {views[0]['label']}"
                 + (" (depends on the legacy key path)" if dependent else ""))
    else:
        data["wallets"] = views
        human = (f"{len(views)} wallet(s), {len(dependent)} depend on the legacy key path "
                 f"(LEGACY_KEY_PATH={mode})")
    return Outcome(human, data, extra_lines=lines)


@command
def cmd_wallet_umk_message(settings: Any, args: argparse.Namespace) -> Outcome:
    """The exact UMK message the owner signs with their wallet (then saved to a file)."""
    owner = address_arg(args.owner, "owner")
    text = umk_message(owner).decode("ascii")
    return Outcome(f"the owner {owner} signs exactly these bytes (UTF-8, one newline): "
                   f"{text!r}", {"owner": owner, "message": text, "version": 1})
