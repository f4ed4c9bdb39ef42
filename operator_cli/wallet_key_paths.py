"""`wallet upgrade|show|umk-message`: which key path each wallet is on, and the move to V3.

Key paths. A V3 wallet's agent key is sealed under the owner's key_privkey only: the
server key alone can no longer reach it, and the wallet's bots sign only through an execution
grant (`bot authorize`). A legacy wallet's key is sealed under the server key ring. `wallet
upgrade ADDR --owner-signature-file FILE` moves a legacy wallet to V3 (and erases the server-key
copy); `wallet show [ADDR]` labels each wallet and says which still depend on the legacy key
path (LEGACY_KEY_PATH); `wallet umk-message ADDR` prints the text the owner signs. The
signature is read from a file, never argv, because argv is visible to every user in /proc and
whoever has the signature can derive the UMK.
"""

from __future__ import annotations

import argparse
from typing import Any

from solders.keypair import Keypair

from config import Settings
from custody.signing_keys import legacy_path_on
from operator_cli.bot_rows import require_wallet
from operator_cli.context import Context, opened
from operator_cli.grant_commands import grant_view
from operator_cli.output import CliError, Outcome, command
from operator_cli.owner_keys import owner_subkeys, read_owner_signature
from operator_cli.validation import address_arg
from operator_cli.wallet_orders import prepared_for_swift
from security.agent_keys import (
    open_agent_privkey,
    open_agent_privkey_legacy,
    seal_agent_privkey,
)
from security.errors import SecurityError
from security.key_hierarchy import umk_message
from security.log_redaction import register_agent_keypair
from storage.bots import list_bots
from storage.wallets import (
    Wallet,
    list_wallets,
    upgrade_to_v3,
    wallet_keys,
)


def register_key_paths(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `wallet upgrade`, `wallet show` and `wallet umk-message` to the `wallet` group."""
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


@command
def cmd_wallet_upgrade(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Move a legacy wallet to V3: seal its agent key under the owner's UMK, erase the server-key
    copy; its bots then sign only through execution grants. On a real venue, also find or create
    the agent's SignedMsgUserOrders, as `wallet create` does (run again, it finishes that step)."""
    signature = read_owner_signature(args.owner_signature_file)
    with opened(settings) as ctx:
        wallet = require_wallet(ctx, args.wallet)
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
    if settings.venue == "sandbox":  # the faucet creates it there (`wallet fund`)
        return done
    return prepared_for_swift(settings, Keypair.from_bytes(secret), done, True)


def _upgraded(address: str, changed: bool, data: dict[str, Any]) -> Outcome:
    """What `wallet upgrade` did to the key path, and what the wallet's bots need next."""
    if not changed:
        return Outcome(f"wallet {address} is already V3; unchanged", data)
    bots = data["bots_needing_grant"]
    warning = (f"{len(bots)} bot(s) of this wallet sign nothing until authorized: "
               "`quantumvault bot authorize BOT --owner-signature-file FILE`") if bots else None
    return Outcome(f"upgraded wallet {address} to V3 (agent key sealed under the owner's key;"
                   " the server-key copy is erased)", data, warning=warning)


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
def cmd_wallet_show(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Key path (legacy or V3) of one wallet or every wallet, and which still need the legacy
    path: what LEGACY_KEY_PATH=off would stop."""
    with opened(settings) as ctx:
        found = [require_wallet(ctx, args.wallet)] if args.wallet else list_wallets(ctx.db)
        views = [wallet_view(ctx, w) for w in found]
    mode = settings.legacy_key_path
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
