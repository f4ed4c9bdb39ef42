"""`bot create|rotate-secret|list|show`: bots and their webhook secrets; the `bot` group.

A webhook secret is printed once, by `create` and `rotate-secret`; only its peppered hash is
stored. `list` and `show` print neither secret nor hash nor HMAC: `webhook_secret_set` and the
policy verdict ("ok" or the refusal label) are all they say about them. `show` labels the key
path and the execution grant (operator_cli.grant_commands), never the sealed UMK or the MAC.

The group's other commands live beside it: copy trading (`publish`, `subscribe`) in
operator_cli.copy_commands, execution grants (`authorize`, `revoke`) in
operator_cli.grant_commands.

Sub-accounts: every bot gets its own Drift sub-account on its wallet, allocated, created and
funded on the venue by `create`/`subscribe` before the bot row commits (operator_cli.subaccounts
says how, and what happens to a bot's sub-account later); `show` says which one.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from custody.signing_keys import legacy_path_on
from operator_cli.bot_rows import (
    check_stored,
    policy_verdict,
    require_bot,
    require_wallet,
    sign_policy,
)
from operator_cli.context import Context, opened
from operator_cli.copy_commands import register_copy
from operator_cli.grant_commands import grant_view, register_grants
from operator_cli.ops_commands import pause_state
from operator_cli.output import CliError, Outcome, command, plain
from operator_cli.owner_keys import read_owner_signature
from operator_cli.subaccounts import allocate, default_fund, fund_arg, sub_account_view
from operator_cli.validation import MAX_NAME, leverage_arg, market_arg, text_arg, usd_arg
from security.log_redaction import register_secret
from security.webhook_auth import issue_bound_webhook_secret
from storage import bots, copy_trading, emergency_stops
from storage.bots import Bot
from storage.row_mac_rows import seal_bot


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `bot` command group."""
    group = subparsers.add_parser("bot", help="trading bots, webhook secrets, copy trading")
    sub = group.add_subparsers(dest="bot_command", required=True)
    create = sub.add_parser("create", parents=[common], help="create a bot (prints its secret)")
    create.add_argument("--wallet", required=True, metavar="ADDR")
    create.add_argument("--market", required=True, help="perp market, e.g. SOL-PERP")
    create.add_argument("--leverage", required=True, metavar="N")
    create.add_argument("--max-position-usd", required=True, metavar="X")
    create.add_argument("--name")
    create.add_argument("--fund-usd", metavar="X",
                        help="collateral moved into the bot's own sub-account from the wallet's "
                             "sub-account 0 (default: max position / leverage; the wallet's "
                             "first bot trades on sub-account 0 as it is)")
    create.add_argument("--no-venue", action="store_true",
                        help="allocate the sub-account only (`bot provision` creates it later)")
    create.add_argument("--owner-signature-file", metavar="FILE",
                        help="a V3 wallet's owner signature: opens its agent key to create the "
                             "bot's sub-account (grants nothing; see `bot authorize`)")
    create.set_defaults(func=cmd_bot_create)
    register_copy(sub, common)
    register_grants(sub, common)
    rotate = sub.add_parser("rotate-secret", parents=[common],
                            help="replace a bot's webhook secret (prints the new one)")
    rotate.add_argument("bot", metavar="BOT")
    rotate.set_defaults(func=cmd_bot_rotate_secret)
    listing = sub.add_parser("list", parents=[common], help="list bots (no secrets)")
    listing.add_argument("--wallet", metavar="ADDR", help="only this wallet's bots")
    listing.set_defaults(func=cmd_bot_list)
    show = sub.add_parser("show", parents=[common], help="show one bot (no secrets)")
    show.add_argument("bot", metavar="BOT")
    show.set_defaults(func=cmd_bot_show)


def _new_secret(ctx: Context, bot_id: str) -> tuple[str, str]:
    """A fresh webhook secret (registered for log redaction) and its stored hash, bound to
    the bot (copied onto another bot's row it authenticates nothing)."""
    issued = issue_bound_webhook_secret(ctx.ring, bot_id)
    register_secret(issued.secret)
    return issued.secret, issued.stored_hash


@command
def cmd_bot_create(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create a bot: its policy HMAC is stored, its webhook secret is shown this once."""
    market, market_index = market_arg(args.market)
    leverage = leverage_arg(args.leverage)
    max_position = usd_arg(args.max_position_usd, "--max-position-usd")
    name = text_arg(args.name, "--name", MAX_NAME) or f"{market} {plain(leverage)}x"
    fund = fund_arg(args.fund_usd)
    signature = (read_owner_signature(args.owner_signature_file)
                 if args.owner_signature_file else None)
    with opened(settings) as ctx:
        wallet = require_wallet(ctx, args.wallet)
        bot_id = str(uuid.uuid4())
        secret, stored_hash = _new_secret(ctx, bot_id)
        with ctx.db.connection():
            sub = allocate(ctx, wallet, fund, default_fund(leverage, max_position),
                           use_venue=not args.no_venue, owner_signature=signature)
            bot = bots.insert_bot(
                ctx.db, bot_id=bot_id, wallet_address=wallet.address, name=name, market=market,
                market_index=market_index, leverage=leverage, max_position_size=max_position,
                webhook_secret_hash=stored_hash,
                policy_hmac=sign_policy(ctx, bot_id, market, leverage, max_position),
                drift_subaccount_id=sub.sub_account_id)
            check_stored(ctx, bot)
            seal_bot(ctx.db, ctx.ring, bot.id)  # its binding MAC'd as written
    data = {**_public(bot), "bot_id": bot.id, "webhook_secret": secret,
            "sub_account": sub.view(), "key_path": wallet.key_path}
    warning = (f"wallet {wallet.address} is V3: bot {bot.id} signs nothing until `quantumvault "
               f"bot authorize {bot.id} --owner-signature-file FILE`" if wallet.is_v3 else None)
    return Outcome(
        f"created bot {bot.id} ({market}, {plain(leverage)}x, max ${plain(max_position)}) "
        f"on wallet {wallet.address}, {sub.human()}; webhook secret (shown only now): "
        f"{secret}", data, warning=warning)


@command
def cmd_bot_rotate_secret(settings: Any, args: argparse.Namespace) -> Outcome:
    """Replace a bot's webhook secret; the old one stops working at once."""
    with opened(settings) as ctx:
        bot = require_bot(ctx, args.bot)
        if bot.is_subscriber:
            raise CliError(f"bot {bot.id} is a subscriber bot; it takes no webhook")
        secret, stored_hash = _new_secret(ctx, bot.id)
        bots.set_webhook_secret_hash(ctx.db, bot.id, stored_hash)
    return Outcome(f"rotated the webhook secret of bot {bot.id}; new secret (shown only now): "
                   f"{secret}", {"bot_id": bot.id, "webhook_secret": secret})


def _public(bot: Bot) -> dict[str, Any]:
    """A bot's shareable fields: never the secret hash, the policy HMAC or the sealed UMK."""
    return {
        "id": bot.id, "name": bot.name, "wallet": bot.wallet_address, "market": bot.market,
        "market_index": bot.market_index, "leverage": plain(bot.leverage),
        "max_position_usd": plain(bot.max_position_size), "active": bot.is_active,
        "paused_reason": bot.paused_reason, "paused_by": bot.paused_by,
        "follows": bot.source_published_bot_id,
        "execution_active": bot.execution_active,
        "execution_expires_at": bot.execution_expires_at,
        "swift_enabled": bot.swift_enabled, "swift_fallback_enabled": bot.swift_fallback_enabled,
        "webhook_secret_set": bot.webhook_secret_hash is not None,
        "drift_subaccount_id": bot.drift_subaccount_id,
        "created_at": bot.created_at,
    }


def _line(bot: Bot, view: dict[str, Any]) -> str:
    """One human line per bot."""
    role = f"follows {bot.source_published_bot_id}" if bot.is_subscriber else (
        f"published as {view['published_bot_id']}" if view.get("published_bot_id") else "source")
    state = pause_state(bot.is_active, bot.paused_by, bot.paused_reason or "no reason")
    return (f"{bot.id}  {bot.market}  {plain(bot.leverage)}x  max ${plain(bot.max_position_size)}  "
            f"wallet {bot.wallet_address}  {state}  {role}  policy {view['policy']}  "
            f"{bot.name!r}")


@command
def cmd_bot_list(settings: Any, args: argparse.Namespace) -> Outcome:
    """List bots with their public fields and policy verdict."""
    with opened(settings) as ctx:
        address = require_wallet(ctx, args.wallet).address if args.wallet else None
        found = bots.list_bots(ctx.db, address)
        published = copy_trading.all_published(ctx.db)
        counts = copy_trading.subscriber_counts(ctx.db)
        views = []
        for bot in found:
            pub = published.get(bot.id)
            views.append({**_public(bot), "policy": policy_verdict(ctx, bot),
                          "published_bot_id": pub.id if pub else None,
                          "subscribers": counts.get(pub.id, 0) if pub else 0})
    lines = [_line(bot, view) for bot, view in zip(found, views, strict=True)]
    human = f"{len(found)} bot(s)"
    return Outcome(human, {"bots": views, "count": len(found)}, extra_lines=lines)


@command
def cmd_bot_show(settings: Any, args: argparse.Namespace) -> Outcome:
    """One bot's public fields, policy verdict, publication and stop flags."""
    with opened(settings) as ctx:
        bot = require_bot(ctx, args.bot)
        wallet = require_wallet(ctx, bot.wallet_address)
        grant = grant_view(wallet, bot.id, legacy_path_on(settings), ctx.db)
        pub = copy_trading.published_for_bot(ctx.db, bot.id)
        wallet_stop = emergency_stops.wallet_stop(ctx.db, bot.wallet_address)
        global_stop = emergency_stops.global_stop(ctx.db)
        view = {**_public(bot), "policy": policy_verdict(ctx, bot),
                "published_bot_id": pub.id if pub else None,
                "profit_share_percent": plain(pub.profit_share_percent) if pub else None,
                "subscribers": copy_trading.subscriber_counts(ctx.db).get(pub.id, 0) if pub else 0,
                "wallet_emergency_stop": wallet_stop.mode if wallet_stop else "none",
                "global_emergency_stop": global_stop.mode,
                "key_path": "v3" if wallet.is_v3 else "legacy", "grant": grant,
                "sub_account": sub_account_view(ctx, bot)}
    lines = [f"  {key}: {value}" for key, value in view.items()]
    return Outcome(_line(bot, view), view, extra_lines=lines)
