"""`bot publish|subscribe`: copy trading, a source bot offered and a wallet's bot following it.

Subscriber bots: `subscribe` creates the subscriber's own trading bot on the source's market,
with leverage at most the source's (default: equal) and `max_position_size` = capital x leverage
(USD notional the subscribed capital can carry), its own policy HMAC and no webhook secret (it
is driven by the source's signals, never by a webhook of its own). With
`--owner-signature-file FILE` a V3 wallet's subscriber bot is granted execution at once
(operator_cli.grant_commands); its sub-account is allocated, created and funded with the
subscription's capital before the rows commit (operator_cli.subaccounts).
"""

from __future__ import annotations

import argparse
import uuid
from decimal import ROUND_DOWN, Decimal
from typing import Any

from operator_cli.bot_rows import check_stored, require_bot, require_wallet, sign_policy
from operator_cli.context import opened
from operator_cli.grant_commands import grant_kit, hours_arg, store_grant
from operator_cli.output import CliError, Outcome, command, plain
from operator_cli.owner_keys import read_owner_signature
from operator_cli.subaccounts import allocate
from operator_cli.validation import MAX_NAME, leverage_arg, percent_arg, usd_arg
from security.execution import GRANT_DEFAULT_HOURS, GRANT_MAX_HOURS
from storage import bots, copy_trading


def register_copy(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `bot publish` and `bot subscribe` to the `bot` group's subcommands."""
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
    subscribe.add_argument("--owner-signature-file", metavar="FILE",
                           help="a V3 wallet's owner signature: grant the subscriber bot")
    subscribe.add_argument("--hours", metavar="N",
                           help=f"life of that grant (default {GRANT_DEFAULT_HOURS}, at most "
                                f"{GRANT_MAX_HOURS})")
    subscribe.set_defaults(func=cmd_bot_subscribe)


@command
def cmd_bot_publish(settings: Any, args: argparse.Namespace) -> Outcome:
    """Offer a bot for copy trading with a creator profit share."""
    percent = percent_arg(args.profit_share_percent)
    with opened(settings) as ctx:
        bot = require_bot(ctx, args.bot)
        if bot.is_subscriber:
            raise CliError(f"bot {bot.id} is a subscriber bot; only source bots can be published")
        if copy_trading.published_for_bot(ctx.db, bot.id) is not None:
            raise CliError(f"bot {bot.id} is already published")
        published = copy_trading.publish_bot(
            ctx.db, trading_bot_id=bot.id, creator_wallet_address=bot.wallet_address,
            profit_share_percent=percent, ring=ctx.ring)
    data = {"published_bot_id": published.id, "bot_id": bot.id,
            "profit_share_percent": plain(published.profit_share_percent),
            "creator_wallet": published.creator_wallet_address}
    return Outcome(f"published bot {bot.id} as {published.id} with a {plain(percent)}% "
                   "profit share", data)


@command
def cmd_bot_subscribe(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create the subscriber's own bot following a published bot, and the subscription."""
    capital = usd_arg(args.capital_usd, "--capital-usd")
    hours = hours_arg(args.hours)
    signature = (read_owner_signature(args.owner_signature_file)
                 if args.owner_signature_file else None)
    if args.max_deviation_bps is not None and not 0 < args.max_deviation_bps <= 10_000:
        raise CliError("--max-deviation-bps must be within 1..10000")
    wanted_leverage = leverage_arg(args.leverage) if args.leverage is not None else None
    with opened(settings) as ctx:
        wallet = require_wallet(ctx, args.wallet)
        published = copy_trading.find_published(ctx.db, args.to.strip())
        if published is None:
            if bots.get_bot(ctx.db, args.to.strip()) is not None:
                raise CliError(f"bot {args.to} is not published; run `bot publish` first")
            raise CliError(f"unknown bot {args.to}")
        if not published.is_active:
            raise CliError(f"published bot {published.id} is no longer active")
        source = require_bot(ctx, published.trading_bot_id)
        if source.wallet_address == wallet.address:
            raise CliError("a wallet cannot subscribe to its own bot")
        if not wallet.has_legacy_key and not wallet.is_v3:
            raise CliError(f"wallet {wallet.address} has no agent key")
        if signature is not None and not wallet.is_v3:
            raise CliError(f"wallet {wallet.address} is legacy (server key): it takes no grant;"
                           " run `quantumvault wallet upgrade` first")
        kit = grant_kit(ctx, wallet, signature, hours) if signature is not None else None
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
            sub = allocate(ctx, wallet, None, capital, use_venue=not args.no_venue,
                           owner_signature=signature)
            bot = bots.insert_bot(
                ctx.db, bot_id=bot_id, wallet_address=wallet.address,
                name=f"copy of {source.name}"[:MAX_NAME], market=source.market,
                market_index=source.market_index, leverage=leverage,
                max_position_size=max_position, webhook_secret_hash=None,
                policy_hmac=sign_policy(ctx, bot_id, source.market, leverage, max_position),
                source_published_bot_id=published.id, drift_subaccount_id=sub.sub_account_id)
            check_stored(ctx, bot)
            subscription = copy_trading.insert_subscription(
                ctx.db, published_bot_id=published.id, subscriber_bot_id=bot.id,
                subscriber_wallet_address=wallet.address, capital_usd=capital,
                max_price_deviation_bps=args.max_deviation_bps, ring=ctx.ring)
            grant = store_grant(ctx, bot, *kit) if kit is not None else None
    data = {"subscriber_bot_id": bot.id, "subscription_id": subscription.id,
            "published_bot_id": published.id, "source_bot_id": source.id,
            "wallet": wallet.address, "market": bot.market, "leverage": plain(bot.leverage),
            "capital_usd": plain(subscription.capital_usd),
            "max_deviation_bps": subscription.max_price_deviation_bps,
            "max_position_usd": plain(bot.max_position_size), "sub_account": sub.view(),
            "key_path": wallet.key_path, "grant_expires_at": grant}
    human = (f"wallet {wallet.address} follows bot {source.id} with subscriber bot "
             f"{bot.id} ({bot.market}, {plain(bot.leverage)}x, ${plain(capital)} capital, "
             f"{sub.human()})")
    if grant is not None:
        return Outcome(f"{human}; authorized until {grant:%Y-%m-%d %H:%M:%S} UTC", data)
    if wallet.is_v3:
        return Outcome(human, data, warning=f"wallet {wallet.address} is V3 and the subscriber "
                       f"bot {bot.id} has no grant: its copies sign nothing until `quantumvault "
                       f"bot authorize {bot.id} --owner-signature-file FILE`")
    return Outcome(human, data)
