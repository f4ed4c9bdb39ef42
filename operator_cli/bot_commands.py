"""`bot create|publish|subscribe|rotate-secret|list|show`: bots, their secrets and copy trading.

A webhook secret is printed once, by `create` and `rotate-secret`; only its peppered hash is
stored. `list` and `show` print neither secret nor hash nor HMAC: `webhook_secret_set` and the
policy verdict ("ok" or the refusal label) are all they say about them.

Subscriber bots: `subscribe` creates the subscriber's own trading bot on the source's market,
with leverage at most the source's (default: equal) and `max_position_size` = capital x leverage
(USD notional the subscribed capital can carry), its own policy HMAC and no webhook secret (it
is driven by the source's signals, never by a webhook of its own).

Sub-accounts: every bot gets its own Drift sub-account on its wallet, allocated, created and
funded on the venue by `create`/`subscribe` before the bot row commits (operator_cli.subaccounts
says how, and what happens to a bot's sub-account later); `show` says which one.
"""

from __future__ import annotations

import argparse
import uuid
from decimal import ROUND_DOWN, Decimal
from typing import Any

from operator_cli.context import Context, opened
from operator_cli.ops_commands import pause_state
from operator_cli.output import CliError, Outcome, command, plain
from operator_cli.subaccounts import allocate, default_fund, fund_arg, sub_account_view
from operator_cli.validation import (
    MAX_NAME,
    leverage_arg,
    market_arg,
    percent_arg,
    text_arg,
    usd_arg,
)
from security.log_redaction import register_secret
from security.policy import BotPolicy, compute_policy_hmac, verify_policy_hmac
from security.webhook_auth import issue_webhook_secret
from storage import bots, copy_trading, emergency_stops, wallets
from storage.bots import Bot


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
    create.set_defaults(func=cmd_bot_create)
    publish = sub.add_parser("publish", parents=[common], help="offer a bot for copy trading")
    publish.add_argument("bot", metavar="BOT")
    publish.add_argument("--profit-share-percent", required=True, metavar="P")
    publish.set_defaults(func=cmd_bot_publish)
    subscribe = sub.add_parser("subscribe", parents=[common],
                               help="follow a published bot with a wallet's own bot")
    subscribe.add_argument("--wallet", required=True, metavar="ADDR")
    subscribe.add_argument("--to", required=True, metavar="BOT",
                           help="the published bot (its trading bot id or publication id)")
    subscribe.add_argument("--capital-usd", required=True, metavar="X")
    subscribe.add_argument("--leverage", metavar="N", help="at most the source's (default)")
    subscribe.add_argument("--max-deviation-bps", metavar="N", type=int,
                           help="skip opening copies whose market moved more than this from the"
                                " source's price (default: no limit; closes always trade)")
    subscribe.add_argument("--no-venue", action="store_true",
                           help="allocate the sub-account only (`bot provision` creates it "
                                "later)")
    subscribe.set_defaults(func=cmd_bot_subscribe)
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


def _require_wallet(ctx: Context, address: str) -> wallets.Wallet:
    """The named wallet, or a CliError."""
    wallet = wallets.find_wallet(ctx.db, address.strip())
    if wallet is None:
        raise CliError(f"unknown wallet {address}")
    return wallet


def _require_bot(ctx: Context, bot_id: str) -> Bot:
    """The named bot, or a CliError."""
    bot = bots.get_bot(ctx.db, bot_id.strip())
    if bot is None:
        raise CliError(f"unknown bot {bot_id}")
    return bot


def _sign_policy(ctx: Context, bot_id: str, market: str, leverage: Decimal,
                 max_position: Decimal) -> str:
    """The policy HMAC under the current server key."""
    kid = ctx.ring.current_key_id
    return compute_policy_hmac(ctx.ring.policy_keys()[kid], kid,
                               BotPolicy(bot_id, market, leverage, max_position))


def _policy_verdict(ctx: Context, bot: Bot) -> str:
    """"ok" or the refusal label the trade gate would give this bot's policy."""
    check = verify_policy_hmac(ctx.ring.policy_keys(), bot.policy, bot.policy_hmac)
    return "ok" if check.ok else str(check.reason)


def _check_stored(ctx: Context, bot: Bot) -> None:
    """Refuse (and roll back) if the stored row would not pass the gate as written."""
    if _policy_verdict(ctx, bot) != "ok":
        raise CliError("the stored policy did not verify; nothing was written")


def _new_secret(ctx: Context) -> tuple[str, str]:
    """A fresh webhook secret (registered for log redaction) and its stored hash."""
    kid = ctx.ring.current_key_id
    issued = issue_webhook_secret(ctx.ring.webhook_peppers()[kid], kid)
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
    with opened(settings) as ctx:
        wallet = _require_wallet(ctx, args.wallet)
        bot_id = str(uuid.uuid4())
        secret, stored_hash = _new_secret(ctx)
        with ctx.db.connection():
            sub = allocate(ctx, wallet, fund, default_fund(leverage, max_position),
                           use_venue=not args.no_venue)
            bot = bots.insert_bot(
                ctx.db, bot_id=bot_id, wallet_address=wallet.address, name=name, market=market,
                market_index=market_index, leverage=leverage, max_position_size=max_position,
                webhook_secret_hash=stored_hash,
                policy_hmac=_sign_policy(ctx, bot_id, market, leverage, max_position),
                drift_subaccount_id=sub.sub_account_id)
            _check_stored(ctx, bot)
    data = {**_public(bot), "bot_id": bot.id, "webhook_secret": secret,
            "sub_account": sub.view()}
    return Outcome(
        f"created bot {bot.id} ({market}, {plain(leverage)}x, max ${plain(max_position)}) "
        f"on wallet {wallet.address}, {sub.human()}; webhook secret (shown only now): "
        f"{secret}", data)


@command
def cmd_bot_publish(settings: Any, args: argparse.Namespace) -> Outcome:
    """Offer a bot for copy trading with a creator profit share."""
    percent = percent_arg(args.profit_share_percent)
    with opened(settings) as ctx:
        bot = _require_bot(ctx, args.bot)
        if bot.is_subscriber:
            raise CliError(f"bot {bot.id} is a subscriber bot; only source bots can be published")
        if copy_trading.published_for_bot(ctx.db, bot.id) is not None:
            raise CliError(f"bot {bot.id} is already published")
        published = copy_trading.publish_bot(
            ctx.db, trading_bot_id=bot.id, creator_wallet_address=bot.wallet_address,
            profit_share_percent=percent)
    data = {"published_bot_id": published.id, "bot_id": bot.id,
            "profit_share_percent": plain(published.profit_share_percent),
            "creator_wallet": published.creator_wallet_address}
    return Outcome(f"published bot {bot.id} as {published.id} with a {plain(percent)}% "
                   "profit share", data)


@command
def cmd_bot_subscribe(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create the subscriber's own bot following a published bot, and the subscription."""
    capital = usd_arg(args.capital_usd, "--capital-usd")
    if args.max_deviation_bps is not None and not 0 < args.max_deviation_bps <= 10_000:
        raise CliError("--max-deviation-bps must be within 1..10000")
    wanted_leverage = leverage_arg(args.leverage) if args.leverage is not None else None
    with opened(settings) as ctx:
        wallet = _require_wallet(ctx, args.wallet)
        published = copy_trading.find_published(ctx.db, args.to.strip())
        if published is None:
            if bots.get_bot(ctx.db, args.to.strip()) is not None:
                raise CliError(f"bot {args.to} is not published; run `bot publish` first")
            raise CliError(f"unknown bot {args.to}")
        if not published.is_active:
            raise CliError(f"published bot {published.id} is no longer active")
        source = _require_bot(ctx, published.trading_bot_id)
        if source.wallet_address == wallet.address:
            raise CliError("a wallet cannot subscribe to its own bot")
        if not wallet.has_legacy_key:
            raise CliError(f"wallet {wallet.address} has no server-sealed agent key")
        existing = copy_trading.active_subscription(ctx.db, published.id, wallet.address)
        if existing is not None:
            raise CliError(f"wallet {wallet.address} already follows this bot with subscriber "
                           f"bot {existing.subscriber_bot_id}")
        leverage = wanted_leverage if wanted_leverage is not None else source.leverage
        if leverage > source.leverage:
            raise CliError(f"--leverage {plain(leverage)} exceeds the source bot's "
                           f"{plain(source.leverage)}")
        max_position = (capital * leverage).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
        if not Decimal(0) < max_position < Decimal(10) ** 14:
            raise CliError("--capital-usd x leverage is out of range")
        bot_id = str(uuid.uuid4())
        with ctx.db.connection():
            sub = allocate(ctx, wallet, None, capital, use_venue=not args.no_venue)
            bot = bots.insert_bot(
                ctx.db, bot_id=bot_id, wallet_address=wallet.address,
                name=f"copy of {source.name}"[:MAX_NAME], market=source.market,
                market_index=source.market_index, leverage=leverage,
                max_position_size=max_position, webhook_secret_hash=None,
                policy_hmac=_sign_policy(ctx, bot_id, source.market, leverage, max_position),
                source_published_bot_id=published.id, drift_subaccount_id=sub.sub_account_id)
            _check_stored(ctx, bot)
            subscription = copy_trading.insert_subscription(
                ctx.db, published_bot_id=published.id, subscriber_bot_id=bot.id,
                subscriber_wallet_address=wallet.address, capital_usd=capital,
                max_price_deviation_bps=args.max_deviation_bps)
    data = {"subscriber_bot_id": bot.id, "subscription_id": subscription.id,
            "published_bot_id": published.id, "source_bot_id": source.id,
            "wallet": wallet.address, "market": bot.market, "leverage": plain(bot.leverage),
            "capital_usd": plain(subscription.capital_usd),
            "max_deviation_bps": subscription.max_price_deviation_bps,
            "max_position_usd": plain(bot.max_position_size), "sub_account": sub.view()}
    return Outcome(f"wallet {wallet.address} follows bot {source.id} with subscriber bot "
                   f"{bot.id} ({bot.market}, {plain(bot.leverage)}x, ${plain(capital)} capital, "
                   f"{sub.human()})", data)


@command
def cmd_bot_rotate_secret(settings: Any, args: argparse.Namespace) -> Outcome:
    """Replace a bot's webhook secret; the old one stops working at once."""
    with opened(settings) as ctx:
        bot = _require_bot(ctx, args.bot)
        if bot.is_subscriber:
            raise CliError(f"bot {bot.id} is a subscriber bot; it takes no webhook")
        secret, stored_hash = _new_secret(ctx)
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
        address = _require_wallet(ctx, args.wallet).address if args.wallet else None
        found = bots.list_bots(ctx.db, address)
        published = copy_trading.all_published(ctx.db)
        counts = copy_trading.subscriber_counts(ctx.db)
        views = []
        for bot in found:
            pub = published.get(bot.id)
            views.append({**_public(bot), "policy": _policy_verdict(ctx, bot),
                          "published_bot_id": pub.id if pub else None,
                          "subscribers": counts.get(pub.id, 0) if pub else 0})
    lines = [_line(bot, view) for bot, view in zip(found, views, strict=True)]
    human = f"{len(found)} bot(s)"
    return Outcome(human, {"bots": views, "count": len(found)}, extra_lines=lines)


@command
def cmd_bot_show(settings: Any, args: argparse.Namespace) -> Outcome:
    """One bot's public fields, policy verdict, publication and stop flags."""
    with opened(settings) as ctx:
        bot = _require_bot(ctx, args.bot)
        pub = copy_trading.published_for_bot(ctx.db, bot.id)
        wallet_stop = emergency_stops.wallet_stop(ctx.db, bot.wallet_address)
        global_stop = emergency_stops.global_stop(ctx.db)
        view = {**_public(bot), "policy": _policy_verdict(ctx, bot),
                "published_bot_id": pub.id if pub else None,
                "profit_share_percent": plain(pub.profit_share_percent) if pub else None,
                "subscribers": copy_trading.subscriber_counts(ctx.db).get(pub.id, 0) if pub else 0,
                "wallet_emergency_stop": wallet_stop.mode if wallet_stop else "none",
                "global_emergency_stop": global_stop.mode,
                "sub_account": sub_account_view(ctx, bot)}
    lines = [f"  {key}: {value}" for key, value in view.items()]
    return Outcome(_line(bot, view), view, extra_lines=lines)
