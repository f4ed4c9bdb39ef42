"""`bot create|publish|subscribe|rotate-secret|list|show`: bots, their secrets and copy trading.

A webhook secret is printed once, by `create` and `rotate-secret`; only its peppered hash is
stored. `list` and `show` print neither secret nor hash nor HMAC: `webhook_secret_set` and the
policy verdict ("ok" or the refusal label) are all they say about them.

Subscriber bots: `subscribe` creates the subscriber's own trading bot on the source's market,
with leverage at most the source's (default: equal) and `max_position_size` = capital x leverage
(USD notional the subscribed capital can carry), its own policy HMAC and no webhook secret (it
is driven by the source's signals, never by a webhook of its own).

Execution grants (issue 13): a bot of a V3 wallet signs only while its owner's grant holds.
`authorize BOT --owner-signature-file FILE [--hours N]` (default 24, at most 720 = 30 days)
stores the bot's UMK sealed with its expiry under the server key (bound to bot and wallet) and
the owner's key_execution MAC over (bot, wallet, expiry); `revoke BOT` erases both at once.
`subscribe --owner-signature-file FILE` grants the new subscriber bot the same way. Legacy
wallets need no grant (and take none: `wallet upgrade` first). `show` labels the key path and
the grant state, never the sealed UMK or the MAC.

Sub-accounts: every bot gets its own Drift sub-account on its wallet, allocated, created and
funded on the venue by `create`/`subscribe` before the bot row commits (operator_cli.subaccounts
says how, and what happens to a bot's sub-account later); `show` says which one.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from operator_cli.context import Context, opened
from operator_cli.ops_commands import pause_state
from operator_cli.output import CliError, Outcome, command, plain
from operator_cli.owner_keys import owner_subkeys, owner_umk, read_owner_signature
from operator_cli.subaccounts import allocate, default_fund, fund_arg, sub_account_view
from operator_cli.validation import (
    MAX_NAME,
    decimal_arg,
    leverage_arg,
    market_arg,
    percent_arg,
    text_arg,
    usd_arg,
)
from operator_cli.wallet_commands import grant_view
from security.agent_keys import open_agent_privkey
from security.errors import SecurityError
from security.execution import (
    GRANT_DEFAULT_HOURS,
    GRANT_MAX_HOURS,
    seal_grant,
    sign_execution_grant,
)
from security.log_redaction import register_secret
from security.policy import BotPolicy, compute_policy_hmac, verify_policy_hmac
from security.row_macs import seal_bot
from security.signing_keys import legacy_path_on
from security.webhook_auth import issue_bound_webhook_secret
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
    create.add_argument("--owner-signature-file", metavar="FILE",
                        help="a V3 wallet's owner signature: opens its agent key to create the "
                             "bot's sub-account (grants nothing; see `bot authorize`)")
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
    subscribe.add_argument("--owner-signature-file", metavar="FILE",
                           help="a V3 wallet's owner signature: grant the subscriber bot")
    subscribe.add_argument("--hours", metavar="N",
                           help=f"life of that grant (default {GRANT_DEFAULT_HOURS}, at most "
                                f"{GRANT_MAX_HOURS})")
    subscribe.set_defaults(func=cmd_bot_subscribe)
    authorize = sub.add_parser("authorize", parents=[common],
                               help="let a V3 bot sign while its owner is away, for N hours")
    authorize.add_argument("bot", metavar="BOT")
    authorize.add_argument("--owner-signature-file", metavar="FILE", required=True,
                           help="owner's signature of the UMK message (`wallet umk-message`)")
    authorize.add_argument("--hours", metavar="N",
                           help=f"grant life (default {GRANT_DEFAULT_HOURS}, at most "
                                f"{GRANT_MAX_HOURS} = 30 days)")
    authorize.set_defaults(func=cmd_bot_authorize)
    revoke = sub.add_parser("revoke", parents=[common],
                            help="erase a bot's execution grant: it signs nothing from now")
    revoke.add_argument("bot", metavar="BOT")
    revoke.set_defaults(func=cmd_bot_revoke)
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
        wallet = _require_wallet(ctx, args.wallet)
        bot_id = str(uuid.uuid4())
        secret, stored_hash = _new_secret(ctx, bot_id)
        with ctx.db.connection():
            sub = allocate(ctx, wallet, fund, default_fund(leverage, max_position),
                           use_venue=not args.no_venue, owner_signature=signature)
            bot = bots.insert_bot(
                ctx.db, bot_id=bot_id, wallet_address=wallet.address, name=name, market=market,
                market_index=market_index, leverage=leverage, max_position_size=max_position,
                webhook_secret_hash=stored_hash,
                policy_hmac=_sign_policy(ctx, bot_id, market, leverage, max_position),
                drift_subaccount_id=sub.sub_account_id)
            _check_stored(ctx, bot)
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
        if not wallet.has_legacy_key and not wallet.is_v3:
            raise CliError(f"wallet {wallet.address} has no agent key")
        if signature is not None and not wallet.is_v3:
            raise CliError(f"wallet {wallet.address} is legacy (server key): it takes no grant;"
                           " run `quantumvault wallet upgrade` first")
        grant_kit = _grant_kit(ctx, wallet, signature, hours) if signature is not None else None
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
                policy_hmac=_sign_policy(ctx, bot_id, source.market, leverage, max_position),
                source_published_bot_id=published.id, drift_subaccount_id=sub.sub_account_id)
            _check_stored(ctx, bot)
            subscription = copy_trading.insert_subscription(
                ctx.db, published_bot_id=published.id, subscriber_bot_id=bot.id,
                subscriber_wallet_address=wallet.address, capital_usd=capital,
                max_price_deviation_bps=args.max_deviation_bps, ring=ctx.ring)
            grant = _store_grant(ctx, bot, *grant_kit) if grant_kit is not None else None
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


def hours_arg(text: str | None) -> Decimal:
    """`--hours`: the grant's life, more than 0 and at most 30 days (default 24)."""
    if text is None:
        return Decimal(GRANT_DEFAULT_HOURS)
    return decimal_arg(text, "--hours", places=6, low=Decimal(0), high=Decimal(GRANT_MAX_HOURS))


def _grant_kit(ctx: Context, wallet: wallets.Wallet, signature: bytes,
               hours: Decimal) -> tuple[Any, Any, datetime]:
    """UMK and sub-keys of a V3 wallet's owner, checked against its agent key, and the expiry."""
    umk = owner_umk(wallet.address, signature)
    subkeys = owner_subkeys(wallet.address, signature)
    keys = wallets.wallet_keys(ctx.db, wallet.address)
    assert keys is not None and keys.v3_envelope is not None
    try:
        open_agent_privkey(subkeys, keys.v3_envelope)  # the owner's key must open the agent's
    except SecurityError:
        raise CliError("the owner's key does not open this wallet's agent key; nothing was "
                       "written") from None
    expires = datetime.now(UTC) + timedelta(microseconds=int(hours * 3_600_000_000))
    return umk, subkeys, expires


def _store_grant(ctx: Context, bot: Bot, umk: Any, subkeys: Any, expires: datetime) -> datetime:
    """Seal the UMK with its expiry for this bot, MAC it with key_execution, store both."""
    envelope = seal_grant(ctx.ring, umk, bot.id, expires)
    mac = sign_execution_grant(subkeys, bot.id, expires)
    if not bots.store_grant(ctx.db, bot.id, envelope, mac, expires):
        raise CliError(f"unknown bot {bot.id}")
    return expires


@command
def cmd_bot_authorize(settings: Any, args: argparse.Namespace) -> Outcome:
    """Grant a V3 bot execution for N hours with its owner's signature (replaces any grant)."""
    hours = hours_arg(args.hours)
    signature = read_owner_signature(args.owner_signature_file)
    with opened(settings) as ctx:
        bot = _require_bot(ctx, args.bot)
        wallet = _require_wallet(ctx, bot.wallet_address)
        if not wallet.is_v3:
            raise CliError(f"bot {bot.id} is on legacy wallet {wallet.address} (server key): it "
                           "takes no grant; run `quantumvault wallet upgrade` first")
        expires = _store_grant(ctx, bot, *_grant_kit(ctx, wallet, signature, hours))
    data = {"bot_id": bot.id, "wallet": wallet.address, "authorized": True,
            "hours": plain(hours), "expires_at": expires}
    return Outcome(f"authorized bot {bot.id} to sign until {expires:%Y-%m-%d %H:%M:%S} UTC "
                   f"({plain(hours)} h)", data)


@command
def cmd_bot_revoke(settings: Any, args: argparse.Namespace) -> Outcome:
    """Erase a bot's execution grant (sealed UMK and MAC): it signs nothing from its next order."""
    with opened(settings) as ctx:
        bot = _require_bot(ctx, args.bot)
        wallet = _require_wallet(ctx, bot.wallet_address)
        before = bots.grant_row(ctx.db, bot.id)
        bots.revoke_grant(ctx.db, bot.id)
        state = next((s for s in bots.v3_grant_states(ctx.db) if s["bot_id"] == bot.id), None)
    had = before is not None and before.envelope is not None
    data = {"bot_id": bot.id, "wallet": wallet.address, "revoked": True, "had_grant": had,
            "key_path": wallet.key_path}
    warning = None
    if not wallet.is_v3:
        warning = (f"wallet {wallet.address} is legacy: it still signs with the server key "
                   "unless LEGACY_KEY_PATH=off or `bot pause`")
    elif state is not None and state["net_position"]:
        warning = (f"bot {bot.id} holds a position: nothing (closes, flatten) can sign for it "
                   "until its owner authorizes it again")
    return Outcome(f"revoked the execution grant of bot {bot.id}" if had else
                   f"bot {bot.id} had no grant; it stays unauthorized", data, warning=warning)


@command
def cmd_bot_rotate_secret(settings: Any, args: argparse.Namespace) -> Outcome:
    """Replace a bot's webhook secret; the old one stops working at once."""
    with opened(settings) as ctx:
        bot = _require_bot(ctx, args.bot)
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
        wallet = _require_wallet(ctx, bot.wallet_address)
        grant = grant_view(wallet, bot.id, legacy_path_on(settings), ctx.db)
        pub = copy_trading.published_for_bot(ctx.db, bot.id)
        wallet_stop = emergency_stops.wallet_stop(ctx.db, bot.wallet_address)
        global_stop = emergency_stops.global_stop(ctx.db)
        view = {**_public(bot), "policy": _policy_verdict(ctx, bot),
                "published_bot_id": pub.id if pub else None,
                "profit_share_percent": plain(pub.profit_share_percent) if pub else None,
                "subscribers": copy_trading.subscriber_counts(ctx.db).get(pub.id, 0) if pub else 0,
                "wallet_emergency_stop": wallet_stop.mode if wallet_stop else "none",
                "global_emergency_stop": global_stop.mode,
                "key_path": "v3" if wallet.is_v3 else "legacy", "grant": grant,
                "sub_account": sub_account_view(ctx, bot)}
    lines = [f"  {key}: {value}" for key, value in view.items()]
    return Outcome(_line(bot, view), view, extra_lines=lines)
