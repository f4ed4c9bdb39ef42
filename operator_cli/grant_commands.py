"""`bot authorize|revoke`: execution grants: a V3 wallet's bot signs while its owner is away.

`authorize BOT --owner-signature-file FILE [--hours N]` (default 24, at most 720 = 30 days)
stores the bot's UMK sealed with its expiry under the server key (bound to bot and wallet) and
the owner's key_execution MAC over (bot, wallet, expiry); `revoke BOT` erases both at once.
`bot subscribe --owner-signature-file FILE` grants the new subscriber bot the same way (with
`grant_kit` and `store_grant`). Legacy wallets need no grant (and take none: `wallet upgrade`
first). `grant_view` is how `bot show` and `wallet show` label a grant, never showing the
sealed UMK or the MAC.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from operator_cli.bot_rows import require_bot, require_wallet
from operator_cli.context import Context, opened
from operator_cli.output import CliError, Outcome, command, plain
from operator_cli.owner_keys import owner_subkeys, owner_umk, read_owner_signature
from operator_cli.validation import decimal_arg
from security.agent_keys import open_agent_privkey
from security.errors import SecurityError
from security.execution import (
    GRANT_DEFAULT_HOURS,
    GRANT_MAX_HOURS,
    seal_grant,
    sign_execution_grant,
)
from storage import bots, wallets
from storage.bots import Bot


def register_grants(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `bot authorize` and `bot revoke` to the `bot` group's subcommands."""
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


def hours_arg(text: str | None) -> Decimal:
    """`--hours`: the grant's life, more than 0 and at most 30 days (default 24)."""
    if text is None:
        return Decimal(GRANT_DEFAULT_HOURS)
    return decimal_arg(text, "--hours", places=6, low=Decimal(0), high=Decimal(GRANT_MAX_HOURS))


def grant_kit(ctx: Context, wallet: wallets.Wallet, signature: bytes,
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


def store_grant(ctx: Context, bot: Bot, umk: Any, subkeys: Any, expires: datetime) -> datetime:
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
        bot = require_bot(ctx, args.bot)
        wallet = require_wallet(ctx, bot.wallet_address)
        if not wallet.is_v3:
            raise CliError(f"bot {bot.id} is on legacy wallet {wallet.address} (server key): it "
                           "takes no grant; run `quantumvault wallet upgrade` first")
        expires = store_grant(ctx, bot, *grant_kit(ctx, wallet, signature, hours))
    data = {"bot_id": bot.id, "wallet": wallet.address, "authorized": True,
            "hours": plain(hours), "expires_at": expires}
    return Outcome(f"authorized bot {bot.id} to sign until {expires:%Y-%m-%d %H:%M:%S} UTC "
                   f"({plain(hours)} h)", data)


@command
def cmd_bot_revoke(settings: Any, args: argparse.Namespace) -> Outcome:
    """Erase a bot's execution grant (sealed UMK and MAC): it signs nothing from its next order."""
    with opened(settings) as ctx:
        bot = require_bot(ctx, args.bot)
        wallet = require_wallet(ctx, bot.wallet_address)
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


def grant_view(wallet: wallets.Wallet, bot_id: str, legacy_on: bool, db: Any) -> dict[str, Any]:
    """One bot's grant as the operator sees it (no envelope, no MAC): state and times."""
    grant = bots.grant_row(db, bot_id)
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
