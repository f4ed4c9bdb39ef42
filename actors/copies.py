"""A signal's market snapshot, and its subscriber copies made once and handed out at once.

The source signal's snapshot (slot, chain time, oracle, size rules) is stored with it and on
every copy, in the same transaction that creates the copies, before the source sends anything:
subscribers run in parallel with the source, and every copy, however long the fan-out lasts and
in whichever process it runs, is sized and signed against that one snapshot, its auction
lengthened by the snapshot's age (`swift_signing.auction_slots_for`), for as long as a signed
auction can reach back to its slot (255 slots, ~100 s). A copy that runs later than that
(behind a long backlog, after a restart) takes a fresh snapshot and keeps the first as its
reference price.
"""

from __future__ import annotations

import logging

from solders.pubkey import Pubkey

from actors.bot_context import BotContext
from actors.messages import CopyTarget, RouteCopies
from actors.services import NamedActor
from actors.swift_signing import auction_slots_for
from storage.bots import Bot
from storage.signals import SignalRow, copy_to_subscribers
from venue.snapshot import MarketSnapshot

log = logging.getLogger(__name__)


def snapshots(ctx: BotContext, bot: Bot, row: SignalRow) -> tuple[MarketSnapshot,
                                                                         MarketSnapshot]:
    """(what the orders are built on, the reference the signal was priced at)."""
    stored = row.snapshot
    if stored is None:
        fresh = ctx.venue.snapshot(bot.market_index)
        return fresh, fresh
    reference = MarketSnapshot.from_json(stored)
    if auction_slots_for(reference, ctx.venue.now(), ctx.auction_slots) is not None:
        return reference, reference
    return ctx.venue.snapshot(bot.market_index), reference


def route_copies(ctx: BotContext, row: SignalRow, snapshot: MarketSnapshot) -> None:
    """Store the snapshot, create the subscriber copies once, hand them out (not waiting)."""
    copies = copy_to_subscribers(ctx.services.db, row.id, ctx.bot_id, snapshot.to_json())
    if not copies:
        return
    targets = tuple(CopyTarget(c.bot_id, c.copy_id, Pubkey.from_string(c.agent_public_key),
                               c.drift_subaccount_id) for c in copies)
    NamedActor(ctx.services, "fanout").tell(RouteCopies(row.id, targets))
    log.info("routing to %d subscribers", len(targets),
             extra={"signal_id": row.id, "bot_id": ctx.bot_id})


