"""One claimed signal of one bot: snapshot, copies for subscribers, trigger point, orders.

The claimed row carries the bot as it is now (storage.signals.claim_next_many). A source signal
takes the market snapshot (one read per market per slot, shared) and creates its subscriber
copies with that snapshot in one transaction, then hands them to the fan-out *before* its own
order: subscribers trade in parallel with the source, whatever its outcome. A copy trades
against the source's snapshot; a copy that runs later than the snapshot can be placed (after a
restart, or behind its bot's previous signal) takes a fresh one, and a subscription's maximum
deviation from the source's reference price is checked against it.

Then the early trigger points (bot paused, execution authorization disabled or expired) skip
the bot's own orders (a bot the system paused still sends its reduce-only closes). The
authorization check is custody.signing_keys', made once per signal by opening the bot's key
through its one opener, which refuses from the grant's rows (read by the signal's claim) before
it decrypts anything: a V3 bot runs only on an unexpired, unrevoked grant, a legacy bot only
while LEGACY_KEY_PATH=on; a flatten skips no pause but fails (recorded, counted) when its bot
cannot sign, since a flatten never falls back to the server key either. Otherwise orders are
sized from the snapshot and the bot's User account (batched and cached by VenueState; a close
that finds nothing to close reads it again first) and executed one after the other (a flip's
open is sized from the account its close left, and priced from the market once its close is
done).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from solders.keypair import Keypair

from actors.bot_context import VENUE_READ_ERRORS, BotContext
from actors.copies import route_copies, snapshots
from actors.order_exec import OrderOutcome, OrderRequest, OrderStatus, execute_order, no_order
from actors.profit_share import notify_close
from actors.retry_flow import queue_retry
from custody.signing_keys import SigningRefused
from security.emergency_stop import FlattenTicket, OrderOrigin
from storage.bot_leases import LeaseLost
from storage.bots import Bot
from storage.signals import SignalRow, SignalStatus, finish_signal, requeue_signal, signal_age_s
from storage.wallets import SigningRows
from trading.alerts import Signal, never_stale
from trading.collateral import free_collateral_usd
from trading.sizing import (
    AccountState,
    BotLimits,
    MarketRules,
    SizingPlan,
    plan_open,
    plan_orders,
)
from venue.positions import UserSnapshot
from venue.precision import PRICE
from venue.snapshot import MarketSnapshot

log = logging.getLogger(__name__)

VENUE_WAIT_S = 300.0  # a signal waits this long for an unreachable venue, then fails
TRANSIENT_REASONS = frozenset({"not_filled", "expired", "rpc_unreachable", "AllRpcDown",
                               "BlockhashNotFound", "send_unanswered", "unconfirmed"})
ORIGINS = {"fanout": OrderOrigin.SUBSCRIBER, "manual": OrderOrigin.MANUAL,
           "flatten": OrderOrigin.FLATTEN}
SIGNING_ORIGINS = {"fanout": "subscriber", "manual": "manual", "flatten": "flatten"}


def signing_origin(row: SignalRow) -> str:
    """The signing-refusal metric's origin label of a signal row."""
    return SIGNING_ORIGINS.get(row.source, "webhook")


def process(ctx: BotContext, row: SignalRow) -> bool:
    """Run one claimed signal; True when it was put back to wait for the venue."""
    db = ctx.services.db
    signal_id = row.id
    context = {"signal_id": signal_id, "bot_id": ctx.bot_id}
    bot: Bot | None = row.bot
    assert bot is not None
    if row.source != "fanout":  # the fan-out prefetches its copies' accounts itself
        ctx.prefetch_account(bot.drift_subaccount_id)
    try:
        snapshot, reference = snapshots(ctx, bot, row)
    except VENUE_READ_ERRORS as exc:  # nothing was sent and nothing routed: wait in order
        return _wait_for_venue(ctx, row, [_unreachable(exc)])
    if row.source == "webhook":
        route_copies(ctx, row, reference)
    if row.source == "flatten":  # no pause stops a flatten; a missing grant does
        signer = _signer(ctx, bot, "flatten", row.signing)
        if isinstance(signer, str):
            finish_signal(db, signal_id, SignalStatus.FAILED, {"trigger": signer}, signer)
            log.error("flatten cannot sign: %s (the position stays open until the owner"
                      " authorizes the bot again)", signer, extra=context)
            return False
    else:
        signer = trigger_point(ctx, bot, signing_origin(row), row.signing)
    if isinstance(signer, str):
        finish_signal(db, signal_id, SignalStatus.SKIPPED, {"trigger": signer}, signer)
        log.info("signal skipped: %s", signer, extra=context)
        return False
    try:
        deviation = _deviation_refusal(ctx, bot, row, reference)
    except VENUE_READ_ERRORS as exc:  # nothing was sent: wait in order
        return _wait_for_venue(ctx, row, [_unreachable(exc)])
    if deviation is not None:
        finish_signal(db, signal_id, SignalStatus.SKIPPED, {"trigger": "price_deviation"},
                      deviation)
        log.info("copy skipped: %s", deviation, extra=context)
        return False
    try:
        outcomes = execute_signal(ctx, bot, row, signer, snapshot, reference)
    except LeaseLost:  # another process holds the bot now: it settles the signal
        raise
    except Exception:
        # an order may have left: the signal stays `processing`, and the restarted actor
        # hands its pending trades to reconciliation instead of guessing now
        log.exception("signal interrupted by an error", extra=context)
        raise
    if not outcomes and bot.closes_only:  # paused by the system, and nothing to close
        finish_signal(db, signal_id, SignalStatus.SKIPPED,
                      {"trigger": "bot_paused", "paused_by": "system"},
                      "bot_paused")
        log.info("signal skipped: bot paused by the system, nothing to close", extra=context)
        return False
    unreachable = [o for o in outcomes if (o.reason or "").startswith("venue_unreachable")]
    if unreachable and not any(o.trade_id for o in outcomes):
        return _wait_for_venue(ctx, row, outcomes)
    statuses = {o.status for o in outcomes}
    status = (SignalStatus.DONE if statuses <= {OrderStatus.COMPLETED} else
              SignalStatus.FAILED if statuses & {OrderStatus.FAILED, OrderStatus.REFUSED}
              else SignalStatus.PARTIAL)
    finish_signal(db, signal_id, status,
                  {"orders": [_outcome_json(o) for o in outcomes]},
                  ", ".join(sorted({o.reason for o in outcomes if o.reason})) or None)
    return False


def _unreachable(exc: BaseException) -> OrderOutcome:
    return no_order(f"venue_unreachable: {type(exc).__name__}")


def _wait_for_venue(ctx: BotContext, row: SignalRow, outcomes: list[OrderOutcome]) -> bool:
    db = ctx.services.db
    if signal_age_s(db, row.id) < VENUE_WAIT_S:
        requeue_signal(db, row.id)
        log.warning("venue unreachable: the signal waits in order",
                    extra={"signal_id": row.id, "bot_id": ctx.bot_id})
        return True
    finish_signal(db, row.id, SignalStatus.FAILED,
                  {"orders": [_outcome_json(o) for o in outcomes]},
                  outcomes[0].reason)
    return False


def _outcome_json(outcome: OrderOutcome) -> dict[str, Any]:
    return {k: v for k, v in outcome.__dict__.items() if k != "user_after"}


def trigger_point(ctx: BotContext, bot: Bot, origin: str = "webhook",
                  rows: SigningRows | None = None) -> Keypair | str:
    """The early exits before any order, as their reason (paused, auth disabled, auth expired,
    legacy path off), else the key the bot signs this signal with.

    A bot the system paused (retries exhausted, an open it cannot afford) goes on: its plan
    keeps only reduce-only orders (`closes_only`), so the close that ends its risk is never
    stranded. An operator's pause stops everything; an emergency stop is the trade guard's.
    """
    if not bot.is_active and not bot.closes_only:
        return "bot_paused"
    return _signer(ctx, bot, origin, rows)


def _signer(ctx: BotContext, bot: Bot, origin: str,
            rows: SigningRows | None = None) -> Keypair | str:
    """The bot's key, or why it may not sign now (counted): one read of its grant per signal
    (`rows`, when the claim read them), and a refused grant is refused from its rows, before
    any decryption."""
    try:
        return ctx.keypair(bot, origin, rows)
    except SigningRefused as exc:
        return exc.reason


def closes_only(bot: Bot, plan: SizingPlan) -> SizingPlan:
    """The plan of a bot the system paused: its reduce-only orders only (a flip's close, not
    its open), and no new pause. Other bots' plans are unchanged."""
    if not bot.closes_only:
        return plan
    kept = tuple(order for order in plan.orders if order.reduce_only)
    return SizingPlan(kept, plan.note if kept else
                      f"paused by the system ({bot.paused_reason}): only closes run")


def _deviation_refusal(ctx: BotContext, bot: Bot, row: SignalRow,
                       reference: MarketSnapshot) -> str | None:
    """An opening copy whose market (as read now: one read per market per slot, shared) moved
    further from the source's price than its subscription allows. Copies that reduce, close or
    flip always trade: skipping one would leave the subscriber holding a position the creator
    has left."""
    parsed = row.parsed or {}
    limit = parsed.get("max_deviation_bps")
    if row.source != "fanout" or not limit or parsed.get("kind") not in ("open", "increase"):
        return None
    ref = reference.market.oracle_price
    now = ctx.venue.snapshot(bot.market_index).market.oracle_price
    moved = abs(now - ref) * 10_000 / ref
    if moved <= float(limit):
        return None
    return f"price moved {moved:.1f} bps from the source's {ref / 1e6} (limit {limit} bps)"


def execute_signal(ctx: BotContext, bot: Bot, row: SignalRow, keypair: Keypair,
                   snapshot: MarketSnapshot, reference: MarketSnapshot) -> list[OrderOutcome]:
    """Size the signal's orders and run them one after the other."""
    parsed = row.parsed or {}
    signal = Signal.from_dict(parsed)
    limits = BotLimits(bot.leverage, bot.max_position_size)
    rules = MarketRules(snapshot.market.min_order_size, snapshot.market.step_size)
    oracle = Decimal(snapshot.market.oracle_price) / PRICE

    def planned(fresh_after: float) -> tuple[UserSnapshot, SizingPlan] | OrderOutcome:
        """The account read after `fresh_after`, and the orders sized from it."""
        try:
            user = ctx.venue.user(keypair.pubkey(), bot.drift_subaccount_id, fresh_after)
        except VENUE_READ_ERRORS as exc:  # nothing was sent: a failed signal, not a crash
            return _unreachable(exc)
        if user is None:
            return no_order("venue_user_missing")
        return user, closes_only(bot, plan_orders(signal, limits, rules,
                                                  _account(ctx, bot, user, snapshot), oracle))

    read = planned(ctx.last_sent)
    if not isinstance(read, OrderOutcome) and not read[1].orders and never_stale(parsed):
        # a close with nothing to close, as the account was last read: a close that never
        # happens is the worst outcome, so "nothing to close" is said only from a read made now
        read = planned(time.monotonic())
        if not isinstance(read, OrderOutcome) and read[1].orders:
            log.warning("a close found its position only on a fresh read (the cached read"
                        " was stale)", extra={"signal_id": row.id, "bot_id": bot.id})
    if isinstance(read, OrderOutcome):
        return [read]
    user, plan = read
    if plan.pause_reason:
        ctx.pause(bot, plan.pause_reason)
        return [no_order(plan.pause_reason[:200])]
    flatten = parsed.get("flatten")
    ticket = FlattenTicket(flatten["stop_id"], flatten["scope"]) if flatten else None
    outcomes: list[OrderOutcome] = []
    for order in plan.orders:
        if order.purpose == "flip_open":  # size the open from the account the close left,
            # and price it from the market as it is now: a new order, after the close's auction
            snapshot = ctx.venue.snapshot(bot.market_index)
            oracle = Decimal(snapshot.market.oracle_price) / PRICE
            if outcomes:
                after = outcomes[-1].user_after or ctx.venue.user(
                    keypair.pubkey(), bot.drift_subaccount_id, ctx.last_sent)
                assert after is not None
                user = after
            fresh = plan_open(order.side, limits, rules, _account(ctx, bot, user, snapshot),
                              oracle)
            if fresh.pause_reason:
                ctx.pause(bot, fresh.pause_reason)
            if not fresh.orders:
                outcomes.append(no_order(fresh.note[:200]))
                break
            order = fresh.orders[0]
        outcome = execute_order(ctx, OrderRequest(
            bot, row.id, order, ORIGINS.get(row.source, OrderOrigin.WEBHOOK), keypair,
            user, snapshot, reference.market.oracle_price, parsed.get("use_swift"), ticket))
        if (order.reduce_only and bot.is_subscriber and outcome.trade_id
                and outcome.status in (OrderStatus.COMPLETED, OrderStatus.PARTIAL)):
            notify_close(ctx.services, outcome.trade_id, user.perp(bot.market_index),
                         outcome.base_filled, outcome.avg_price)
        outcomes.append(outcome)
        if outcome.status == OrderStatus.UNKNOWN or (outcome.status == OrderStatus.FAILED and (
                outcome.reason in TRANSIENT_REASONS or order.reduce_only)):
            queue_retry(ctx, bot, row.id, order, outcome, user, ticket)
        if outcome.status not in (OrderStatus.COMPLETED, OrderStatus.PARTIAL):
            break  # never open the second half of a flip on a failed close
    if not plan.orders:
        log.info("no order: %s", plan.note, extra={"signal_id": row.id, "bot_id": bot.id})
    return outcomes


def _account(ctx: BotContext, bot: Bot, user: UserSnapshot,
             snapshot: MarketSnapshot) -> AccountState:
    market = snapshot.market
    free = free_collateral_usd(user, ctx.services.profile.quote_spot_market_index,
                               {bot.market_index: (market.oracle_price,
                                                   market.margin_ratio_initial)})
    return AccountState(free, user.perp(bot.market_index).base_asset_amount)
