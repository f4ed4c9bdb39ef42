"""The rows a `bot` command acts on: wallets and bots looked up by name, and the policy HMAC.

Shared by the `bot` command modules (bot_commands, copy_commands, grant_commands) so that each
refuses an unknown name, signs a policy and checks a stored row the same way.
"""

from __future__ import annotations

from decimal import Decimal

from operator_cli.context import Context
from operator_cli.output import CliError
from security.policy import BotPolicy, compute_policy_hmac, verify_policy_hmac
from storage import bots, wallets
from storage.bots import Bot


def require_wallet(ctx: Context, address: str) -> wallets.Wallet:
    """The named wallet, or a CliError."""
    wallet = wallets.find_wallet(ctx.db, address.strip())
    if wallet is None:
        raise CliError(f"unknown wallet {address}")
    return wallet


def require_bot(ctx: Context, bot_id: str) -> Bot:
    """The named bot, or a CliError."""
    bot = bots.get_bot(ctx.db, bot_id.strip())
    if bot is None:
        raise CliError(f"unknown bot {bot_id}")
    return bot


def sign_policy(ctx: Context, bot_id: str, market: str, leverage: Decimal,
                max_position: Decimal) -> str:
    """The policy HMAC under the current server key."""
    kid = ctx.ring.current_key_id
    return compute_policy_hmac(ctx.ring.policy_keys()[kid], kid,
                               BotPolicy(bot_id, market, leverage, max_position))


def policy_verdict(ctx: Context, bot: Bot) -> str:
    """"ok" or the refusal label the trade gate would give this bot's policy."""
    check = verify_policy_hmac(ctx.ring.policy_keys(), bot.policy, bot.policy_hmac)
    return "ok" if check.ok else str(check.reason)


def check_stored(ctx: Context, bot: Bot) -> None:
    """Refuse (and roll back) if the stored row would not pass the gate as written."""
    if policy_verdict(ctx, bot) != "ok":
        raise CliError("the stored policy did not verify; nothing was written")
