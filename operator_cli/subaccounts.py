"""Each bot's own Drift sub-account: allocated by `bot create`/`bot subscribe`, and two commands.

    bot provision BOT [--fund-usd X]              create the bot's sub-account on the venue if
                                                  missing and top its collateral up to X
    bot migrate-subaccounts [--wallet ADDR] [--dry-run] [--no-fund]
                                                  move bots that still share a sub-account
                                                  (created before per-bot sub-accounts)

Allocation (`allocate`, called inside the command's database transaction, before the bot row is
inserted): the wallet row is locked, the next id is the wallet's highest plus one (0 for its
first bot), the venue is read (venue.subaccounts.plan_sub_account: the program creates ids only
in order) and the account is created and funded before the transaction commits. If the venue
refuses, nothing is written; if its answer is lost, running the command again finds the account
and takes it over (it is flat) instead of creating another.

Funding: sub-account 0 is the wallet's main account, created and funded with the wallet (`wallet
create`, `wallet fund` on the sandbox); the first bot of a wallet trades on it as it is. Every
later bot's account is funded from it with `transferDeposit`: `bot create` moves `--fund-usd`
(default: max position / leverage, the margin the bot's largest position needs), `bot subscribe`
the subscription's `--capital-usd`. `--fund-usd` on a first bot deposits from the agent's quote
token account. `--no-venue` allocates the id only (offline; `bot provision` finishes later).

Deleting: bots are never deleted (trades, signals and profit shares refer to them); a bot taken
out of service (`bot pause`) keeps its sub-account and its id, which is never given to another
bot: the program's counter only grows, so a deleted User's id could never be created again. Its
collateral stays in it (no command moves it back to sub-account 0 yet). The migration report
and `bot show` say which id a bot has and whether it still shares one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from operator_cli.bot_rows import require_wallet
from operator_cli.context import Context, opened
from operator_cli.output import CliError, Outcome, command, plain
from operator_cli.owner_keys import agent_secret_for_cli, read_owner_signature
from operator_cli.swift_account import venue_rpc
from operator_cli.validation import MAX_USD, decimal_arg
from security.log_redaction import register_agent_keypair
from storage import subaccounts
from storage.bots import Bot, get_bot
from storage.row_mac_rows import seal_bot
from storage.wallets import Wallet
from venue.positions import UserSnapshot
from venue.profiles import VenueProfile
from venue.rpc_client import RpcError, RpcTransportError, error_label
from venue.subaccounts import (
    FUNDING_SOURCE,
    Provisioned,
    SubAccountError,
    SubAccountPlan,
    plan_sub_account,
    provision,
    read_sub_account,
)


def fund_arg(text: str | None) -> Decimal | None:
    """`--fund-usd`: a USD amount, 0 allowed (no funding), six decimals."""
    if text is None:
        return None
    return decimal_arg(text, "--fund-usd", places=6, low=Decimal(0), high=MAX_USD,
                       low_inclusive=True)


def default_fund(leverage: Decimal, max_position_usd: Decimal) -> Decimal:
    """The margin a bot's largest position needs: max position / leverage."""
    return (max_position_usd / leverage).quantize(Decimal("0.000001"))


class Venue:
    """The venue one command talks to: profile, primary RPC, the wallet's agent key."""

    def __init__(self, ctx: Context) -> None:
        profile, self.rpc = venue_rpc(ctx.settings)
        self.profile: VenueProfile = profile
        self._ctx = ctx

    def close(self) -> None:
        """Close the RPC session."""
        self.rpc.close()

    def agent(self, wallet_address: str, owner_signature: bytes | None = None) -> Keypair:
        """The wallet's agent key: a V3 wallet's through its owner's signature, a legacy
        wallet's through the server key (operator_cli.owner_keys)."""
        wallet = require_wallet(self._ctx, wallet_address)
        secret = agent_secret_for_cli(self._ctx, wallet, owner_signature)
        register_agent_keypair(secret)
        return Keypair.from_bytes(secret)

    def quote_units(self, usd: Decimal) -> int:
        """USD (the quote token, 1:1) in the quote mint's units."""
        return int(usd * 10 ** self.profile.quote_decimals)

    def usd(self, units: int) -> Decimal:
        """Quote units back to USD."""
        return Decimal(units) / 10 ** self.profile.quote_decimals

    def plan(self, authority: Pubkey, wanted: int) -> SubAccountPlan:
        """plan_sub_account with venue failures as CliError."""
        try:
            return plan_sub_account(self.rpc, self.profile, authority, wanted)
        except (RpcError, RpcTransportError) as exc:
            raise CliError(f"cannot read the venue ({error_label(exc)})") from None
        except SubAccountError as exc:
            raise CliError(str(exc)) from None

    def read(self, authority: Pubkey, sub_account_id: int) -> UserSnapshot | None:
        """One sub-account's User, venue failures as CliError."""
        try:
            return read_sub_account(self.rpc, self.profile, authority, sub_account_id)
        except (RpcError, RpcTransportError) as exc:
            raise CliError(f"cannot read the venue ({error_label(exc)})") from None

    def provision(self, keypair: Keypair, plan: SubAccountPlan, fund_usd: Decimal) -> Provisioned:
        """provision with its refusals as CliError."""
        try:
            return provision(self.rpc, self.profile, keypair, plan, self.quote_units(fund_usd))
        except SubAccountError as exc:
            raise CliError(str(exc)) from None


@dataclass(frozen=True)
class Allocation:
    """The sub-account a new bot gets and what was done on the venue for it."""

    sub_account_id: int
    venue: str  # "created" | "adopted" | "main account" | "skipped (--no-venue)"
    done: Provisioned | None = None
    usd: Decimal = Decimal(0)

    def view(self) -> dict[str, Any]:
        """JSON for the command's output."""
        done = self.done
        return {"id": self.sub_account_id, "venue": self.venue,
                "created_ids": list(done.created) if done else [],
                "funded_usd": plain(self.usd), "funding": done.method if done else None,
                "signatures": list(done.signatures) if done else []}

    def human(self) -> str:
        """A phrase for the command's human line."""
        text = f"sub-account {self.sub_account_id} ({self.venue}"
        if self.usd:
            text += f", funded ${plain(self.usd)}"
        return text + ")"


def allocate(ctx: Context, wallet: Wallet, fund_usd: Decimal | None, default_usd: Decimal, *,
             use_venue: bool, owner_signature: bytes | None = None) -> Allocation:
    """Pick, create and fund the next sub-account of ``wallet`` (inside the caller's
    transaction, before its bot row is inserted; a CliError rolls everything back).

    ``fund_usd`` is the collateral the account should hold; None means ``default_usd`` for a
    new account and nothing for the wallet's main account (sub-account 0), used as it is.
    """
    if not subaccounts.lock_wallet(ctx.db, wallet.address):
        raise CliError(f"unknown wallet {wallet.address}")
    wanted = subaccounts.next_subaccount_id(ctx.db, wallet.address)
    if not use_venue:
        return Allocation(wanted, "skipped (--no-venue)")
    target = fund_usd if fund_usd is not None else (
        Decimal(0) if wanted == FUNDING_SOURCE else default_usd)
    if wanted == FUNDING_SOURCE and not target:
        return Allocation(wanted, "main account")
    venue = Venue(ctx)
    try:
        keypair = venue.agent(wallet.address, owner_signature)
        plan = venue.plan(keypair.pubkey(), wanted)
        done = venue.provision(keypair, plan, target)
        return Allocation(plan.sub_account_id, "adopted" if plan.exists else "created", done,
                          venue.usd(done.funded))
    finally:
        venue.close()


def sub_account_view(ctx: Context, bot: Bot) -> dict[str, Any]:
    """`bot show`'s sub-account facts (from the database; no venue read)."""
    shared = subaccounts.is_shared(ctx.db, bot.id)
    on_it = subaccounts.holders(ctx.db, bot.wallet_address, bot.drift_subaccount_id)
    moves = subaccounts.moves(ctx.db, bot.id)
    return {"id": bot.drift_subaccount_id, "shared": shared,
            "shared_with": [b for b in on_it if b != bot.id],
            "moved_from": moves[-1]["from_subaccount_id"] if moves else None}


# --- commands ------------------------------------------------------------------------------


def register(bot_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `bot provision` and `bot migrate-subaccounts` to the `bot` group."""
    prov = bot_sub.add_parser("provision", parents=[common],
                              help="create a bot's sub-account on the venue, top it up")
    prov.add_argument("bot", metavar="BOT")
    prov.add_argument("--fund-usd", metavar="X",
                      help="collateral the sub-account should hold (moved from sub-account 0)")
    prov.add_argument("--owner-signature-file", metavar="FILE",
                      help="a V3 wallet's owner signature (opens its agent key)")
    prov.set_defaults(func=cmd_bot_provision)
    mig = bot_sub.add_parser("migrate-subaccounts", parents=[common],
                             help="give bots that still share a sub-account their own")
    mig.add_argument("--wallet", metavar="ADDR", help="only this wallet's bots")
    mig.add_argument("--dry-run", action="store_true", help="report what would be done")
    mig.add_argument("--no-fund", action="store_true",
                     help="create the new sub-accounts empty (fund with `bot provision`)")
    mig.set_defaults(func=cmd_bot_migrate_subaccounts)


@command
def cmd_bot_provision(settings: Any, args: argparse.Namespace) -> Outcome:
    """Create the bot's sub-account if the venue lacks it, and top its collateral up."""
    fund = fund_arg(args.fund_usd)
    signature = (read_owner_signature(args.owner_signature_file)
                 if args.owner_signature_file else None)
    with opened(settings) as ctx:
        bot = get_bot(ctx.db, args.bot.strip())
        if bot is None:
            raise CliError(f"unknown bot {args.bot}")
        if subaccounts.is_shared(ctx.db, bot.id):
            raise CliError(f"bot {bot.id} still shares sub-account {bot.drift_subaccount_id}; "
                           "run `quantumvault bot migrate-subaccounts` first")
        with ctx.db.connection():
            subaccounts.lock_wallet(ctx.db, bot.wallet_address)
            venue = Venue(ctx)
            try:
                keypair = venue.agent(bot.wallet_address, signature)
                plan = venue.plan(keypair.pubkey(), bot.drift_subaccount_id)
                if plan.sub_account_id != bot.drift_subaccount_id:
                    raise CliError(
                        f"sub-account {bot.drift_subaccount_id} of {keypair.pubkey()} was deleted "
                        "on the venue and can never be created again (the next id is "
                        f"{plan.sub_account_id})")
                done = venue.provision(keypair, plan, fund or Decimal(0))
                balance = venue.usd(done.quote_balance)
                funded = venue.usd(done.funded)
            finally:
                venue.close()
    data = {"bot_id": bot.id, "sub_account_id": bot.drift_subaccount_id,
            "created_ids": list(done.created), "funded_usd": plain(funded),
            "funding": done.method, "quote_usd": plain(balance),
            "signatures": list(done.signatures)}
    what = "created" if done.created else "exists"
    return Outcome(f"bot {bot.id}: sub-account {bot.drift_subaccount_id} {what}, funded "
                   f"${plain(funded)}, holds ${plain(balance)}", data)


def _migration_fund(bot: subaccounts.SharedBot) -> Decimal:
    if bot.capital_usd is not None:
        return bot.capital_usd
    return default_fund(bot.leverage, bot.max_position_size)


def _blocker(ctx: Context, venue: Venue, bot: subaccounts.SharedBot,
             agent: Pubkey) -> str | None:
    """Why this bot cannot move now, or None."""
    work = subaccounts.open_work(ctx.db, bot.bot_id)
    if work.in_flight:  # each would act on the old sub-account's position or PnL
        return (f"the bot still has {work.signals} signal(s) running, {work.retries} "
                f"retry job(s) and {work.ious} unpaid profit share(s)")
    current = venue.read(agent, bot.drift_subaccount_id)
    if current is None:
        return None
    perp = current.perps.get(bot.market_index)
    if perp is not None and (perp.base_asset_amount or perp.open_orders):
        return (f"sub-account {bot.drift_subaccount_id} holds a position or open orders in "
                f"{bot.market}, which may be partly this bot's; close it, then run this again")
    return None


def _migrate_one(ctx: Context, venue: Venue, bot: subaccounts.SharedBot, *, dry_run: bool,
                 fund: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"bot_id": bot.bot_id, "wallet": bot.wallet_address,
                             "market": bot.market, "from": bot.drift_subaccount_id,
                             "kept_by": bot.keeper_bot_id or None}
    target = _migration_fund(bot) if fund else Decimal(0)
    with ctx.db.connection():
        subaccounts.lock_wallet(ctx.db, bot.wallet_address)
        keypair = venue.agent(bot.wallet_address)
        blocked = _blocker(ctx, venue, bot, keypair.pubkey())
        if blocked:
            return {**entry, "status": "blocked", "reason": blocked}
        wanted = subaccounts.next_subaccount_id(ctx.db, bot.wallet_address)
        plan = venue.plan(keypair.pubkey(), wanted)
        entry.update(to=plan.sub_account_id, fund_usd=plain(target))
        if dry_run:
            return {**entry, "status": "would move", "create_ids": list(plan.create)}
        done = venue.provision(keypair, plan, target)
        funded = venue.usd(done.funded)
        if not subaccounts.move_bot(ctx.db, bot.bot_id, bot.drift_subaccount_id,
                                    plan.sub_account_id, funded, list(done.signatures)):
            return {**entry, "status": "blocked", "reason": "the bot row changed meanwhile"}
        seal_bot(ctx.db, ctx.ring, bot.bot_id)  # its binding names the new sub-account
        return {**entry, "status": "moved", "created_ids": list(done.created),
                "funded_usd": plain(funded), "funding": done.method,
                "signatures": list(done.signatures)}


@command
def cmd_bot_migrate_subaccounts(settings: Any, args: argparse.Namespace) -> Outcome:
    """Move every bot that still shares a sub-account to its own: venue first, then the row."""
    with opened(settings) as ctx:
        wallet = require_wallet(ctx, args.wallet).address if args.wallet else None
        pending = subaccounts.shared_bots(ctx.db, wallet)
        report: list[dict[str, Any]] = []
        if pending:
            venue = Venue(ctx)
            try:
                for bot in pending:
                    try:
                        report.append(_migrate_one(ctx, venue, bot, dry_run=args.dry_run,
                                                   fund=not args.no_fund))
                    except CliError as exc:  # one bot's refusal does not stop the others
                        report.append({"bot_id": bot.bot_id, "wallet": bot.wallet_address,
                                       "market": bot.market, "from": bot.drift_subaccount_id,
                                       "status": "blocked", "reason": str(exc)})
            finally:
                venue.close()
        remaining = subaccounts.shared_count(ctx.db)
    counts = {s: sum(1 for r in report if r["status"] == s)
              for s in ("moved", "would move", "blocked")}
    lines = [_report_line(r) for r in report]
    human = (f"{counts['moved']} bot(s) moved, {counts['blocked']} blocked"
             + (f", {counts['would move']} would move (dry run)" if args.dry_run else "")
             + f"; {remaining} still share a sub-account")
    data = {"bots": report, "moved": counts["moved"], "blocked": counts["blocked"],
            "would_move": counts["would move"], "still_shared": remaining,
            "dry_run": bool(args.dry_run)}
    return Outcome(human, data, code=0 if not counts["blocked"] else 1, extra_lines=lines)


def _report_line(r: dict[str, Any]) -> str:
    head = f"  {r['bot_id']}  wallet {r['wallet']}  {r['market']}  sub-account {r['from']}"
    if r["status"] == "blocked":
        return f"{head}: blocked: {r['reason']}"
    fund = r.get("funded_usd", r.get("fund_usd", "0"))
    return f"{head} -> {r['to']}: {r['status']} (funded ${fund})"

