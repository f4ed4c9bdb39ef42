"""What a BotActor's plain modules share: the bot's id, the services, its clients and its key.

The execution, reconciliation and retry modules are functions of this context, not methods of
the actor, so the actor itself stays the mailbox that keeps the bot's order. The context is
rebuilt with the actor: it holds nothing the database and the venue cannot give back.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

import pykka
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.legacy_executor import ExecutorClient
from actors.messages import CurrentFlags, Prefetch, Sending
from actors.services import NamedActor, Services
from actors.venue_state import VenueStateClient
from custody.signing_keys import legacy_path_on, open_bot_signing_key, watch_grants
from security.log_redaction import register_agent_keypair
from storage.bot_controls import pause_bot
from storage.bots import Bot
from storage.wallets import SigningRows
from trading.routing import SwiftFlags
from venue.rpc_client import AllRpcDown, RpcError, RpcTransportError

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 10.0
FLAGS_ASK_TIMEOUT_S = 2.0  # past it, an order uses the flags it saw last
LEGACY_WAIT_S = 130.0  # the executor's worst case: a read with failover, send, 30 s confirm
VENUE_READ_ERRORS = (RpcError, RpcTransportError, AllRpcDown, pykka.Timeout,
                     pykka.ActorDeadError, ValueError)


@dataclass
class BotContext:
    """One bot's handles; `last_sent` is when its last order left (monotonic seconds).

    `lease_epoch` is set by the BotActor whenever it learns it holds the bot's lease: every
    send is fenced by it (the order goes out only while the lease is still at that epoch).

    `flags` are the live Swift flags as last seen: each order asks the flags actor for the
    current ones (`current_flags`), so `quantumvault flags set` applies to the next order.
    """

    bot_id: str
    services: Services
    flags: SwiftFlags
    swift_max_retries: int
    budget_s: float
    slippage_bps: int
    auction_slots: int  # the Swift auction: what each order has left to trade once it leaves
    unknown_settle_s: float
    venue: VenueStateClient
    gateway: NamedActor
    executor: ExecutorClient
    flags_owner: NamedActor | None = None
    rng: random.Random = field(default_factory=random.Random)
    last_sent: float = 0.0
    lease_epoch: int | None = None  # the bot's lease epoch this daemon holds (None: unknown)
    _keypair: Keypair | None = None

    @classmethod
    def create(cls, bot_id: str, services: Services) -> BotContext:
        """The context of bot `bot_id` from the daemon's settings."""

        s = services.settings
        watch_grants(services.db)  # the grant gauges read this daemon's database at scrape
        return cls(
            bot_id=bot_id, services=services,
            flags=SwiftFlags.from_values(s.values),
            swift_max_retries=s.swift_max_retries_before_fallback,
            budget_s=s.execution_budget_ms / 1000,
            slippage_bps=s.legacy_slippage_bps,
            auction_slots=services.auction_slots(),
            # an order of unknown fate is checked only after it can no longer trade: past a
            # Swift auction and a blockhash's life, which RETRY_LEASE_S is set to outlast
            unknown_settle_s=s.retry_lease_s,
            venue=VenueStateClient(services, ASK_TIMEOUT_S),
            gateway=NamedActor(services, "swift_gateway", ASK_TIMEOUT_S),
            executor=ExecutorClient(services, ASK_TIMEOUT_S),
            flags_owner=NamedActor(services, "flags", FLAGS_ASK_TIMEOUT_S))

    def current_flags(self) -> SwiftFlags:
        """The live Swift flags (an ask of the flags actor; the last seen if it cannot answer)."""
        if self.flags_owner is None:
            return self.flags
        try:
            self.flags = self.flags_owner.ask(CurrentFlags(), FLAGS_ASK_TIMEOUT_S)
        except Exception as exc:  # restarting, or the tree is stopping: keep the last seen
            log.warning("live flags not answered (%s); using the last seen",
                        type(exc).__name__, extra={"bot_id": self.bot_id})
        return self.flags

    def keypair(self, bot: Bot, origin: str = "webhook",
                rows: SigningRows | None = None) -> Keypair:
        """The agent key for the next signature, through custody.signing_keys (the one
        opener): a V3 wallet's only through the bot's unexpired grant, a legacy wallet's through
        the server key while LEGACY_KEY_PATH=on. Re-checked on every call, so a revocation or
        an expiry stops the next signature; raises SigningRefused (counted) otherwise. `rows`:
        the grant and envelopes the signal's claim read (no read of its own then)."""
        secret = open_bot_signing_key(self.services.db, self.services.ring, bot.id,
                                      legacy_allowed=legacy_path_on(self.services.settings),
                                      origin=origin, rows=rows)
        if self._keypair is None or bytes(self._keypair) != secret:
            register_agent_keypair(secret)  # no later log line can carry it, nor its seed
            self._keypair = Keypair.from_bytes(secret)
        return self._keypair

    def prefetch_account(self, sub_account_id: int) -> None:
        """Start reading the bot's User account now, beside the market snapshot, when its key
        has been opened before: the order's own read finds it instead of waiting its turn."""
        if self._keypair is not None:
            self.venue.tell(Prefetch(((self._keypair.pubkey(), sub_account_id),)))

    def sending(self, authority: Pubkey, sub_account_id: int) -> None:
        """An order is about to leave: reads of this account made before now are stale."""
        self.last_sent = time.monotonic()
        self.venue.tell(Sending(authority, sub_account_id))

    def pause(self, bot: Bot, reason: str) -> None:
        """Pause the bot for a reason the system found (the operator sees it in bot status).

        A system pause stops opens and increases; the bot's reduce-only closes still run (its
        position is never stranded), until `bot resume`; an operator's pause stops everything.
        """
        if pause_bot(self.services.db, bot.id, reason[:500], paused_by="system") is not None:
            log.warning("bot paused by the system (closes still run): %s", reason,
                        extra={"bot_id": bot.id})
