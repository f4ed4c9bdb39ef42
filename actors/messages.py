"""The messages actors send each other, and the values they carry, in one module.

Every actor imports its vocabulary from here and nothing from another actor's module, so the
actors form no import circle (bot -> fanout -> dispatch -> bot was one). Messages an actor
sends only to itself stay private in its own module.

Units throughout: base amounts 1e9, prices 1e6, slots and unix seconds as the chain counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from storage.retry_queue import RetryJob
from venue.legacy_tx import BuiltTx
from venue.perp_market import MarketState
from venue.positions import PerpPositionView, UserSnapshot
from venue.snapshot import MarketSnapshot
from venue.swift_errors import OutcomeKind


# --- BotActor ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessSignal:
    """Wake-up: run this bot's accepted signals (this one among them) in arrival order."""

    signal_id: str


@dataclass(frozen=True)
class Quiesce:
    """The daemon is stopping: take no new work; answered once the work in hand is done."""


@dataclass(frozen=True)
class RunRetry:
    """Run one claimed retry job (claimed by `worker`) and settle it."""

    job: RetryJob
    worker: str


@dataclass(frozen=True)
class HandOver:
    """Give this bot's lease to another worker (rebalancing), once nothing of it is in flight."""

    target: str


# --- FanoutCoordinator -------------------------------------------------------------------------
@dataclass(frozen=True)
class CopyTarget:
    """One subscriber copy of a source signal, with where its account lives on the venue."""

    bot_id: str
    copy_id: str
    authority: Pubkey
    sub_account_id: int


@dataclass(frozen=True)
class RouteCopies:
    """Copies of a source signal are committed: prefetch their accounts, wake their bots."""

    signal_id: str
    copies: tuple[CopyTarget, ...]


@dataclass(frozen=True)
class FanoutStatus:
    """Ask for the number of copies handed out since start (for status pages)."""


# --- VenueState: the slot clock, market snapshots, batched account reads ------------------------
@dataclass(frozen=True)
class Now:
    """Ask for the current ChainTime (no RPC call unless nothing was ever read)."""


@dataclass(frozen=True)
class SnapshotOf:
    """Ask for a MarketSnapshot of `market_index` read within the current slot."""

    market_index: int


@dataclass(frozen=True)
class UsersOf:
    """Ask for User accounts (None where missing) read after `fresh_after` (monotonic s)."""

    authorities: tuple[tuple[Pubkey, int], ...]  # (authority, sub-account id)
    fresh_after: float = 0.0


@dataclass(frozen=True)
class UsersRead:
    """Answer to UsersOf: the accounts by (authority, sub-account id), and the read's slot."""

    users: dict[tuple[Pubkey, int], UserSnapshot | None]
    slot: int


@dataclass(frozen=True)
class Prefetch:
    """Read these User accounts now, in batches, so the asks that follow find them."""

    authorities: tuple[tuple[Pubkey, int], ...]


@dataclass(frozen=True)
class Sending:
    """An order for this account is about to leave: reads made before now are stale."""

    authority: Pubkey
    sub_account_id: int


@dataclass(frozen=True)
class RawAccountsOf:
    """Ask for raw accounts, batched with all other reads: {key: AccountData | None}."""

    keys: tuple[Pubkey, ...]
    fresh_after: float = 0.0  # monotonic s: only a read started after it will do


@dataclass(frozen=True)
class Observed:
    """Accounts another owner read (the fill tracker), shared so nobody reads them again."""

    started: float
    slot: int
    unix_ts: int | None
    users: dict[tuple[Pubkey, int], UserSnapshot | None]


# --- SwiftGateway ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwiftOrder:
    """One market order to send through Swift for `authority`, signed against `snapshot`."""

    signer: Keypair = field(repr=False)
    authority: Pubkey
    sub_account_id: int
    market: str
    direction: int  # venue.auction.LONG / SHORT
    base_amount: int
    reduce_only: bool
    snapshot: MarketSnapshot
    position_before: PerpPositionView
    trade_id: str | None = None
    signal_id: str | None = None
    bot_id: str | None = None
    attempt: int = 0  # Swift retries of this trade before it: a retry is a new order (uuid)
    # the send's fence: sent only while `holder` holds the bot's lease at `epoch`
    holder: str | None = None
    epoch: int | None = None

    @property
    def market_index(self) -> int:
        """The market the order trades."""
        return self.snapshot.market.market_index


class SwiftState(StrEnum):
    """What became of a Swift order (SwiftResult.state): whether a fallback is safe."""

    NOT_SENT = "not_sent"  # nothing left us (unhealthy, budget): fallback is safe
    REJECTED = "rejected"  # the service refused it (SwiftResult.kind says how): safe
    EXPIRED = "expired"  # published, never placed or never filled, can no longer trade: safe
    FILLED = "filled"  # it traded, wholly
    PARTIAL = "partial"  # it traded partly, and the rest is not coming
    UNKNOWN = "unknown"  # its fate was not learnt in time: never send it again blindly


@dataclass(frozen=True)
class SwiftResult:
    """What became of a Swift order; `state` (a SwiftState) says whether a fallback is safe."""

    state: SwiftState
    reason: str | None = None
    kind: OutcomeKind | None = None  # how the service refused it, when rejected
    swift_order_id: str | None = None
    order_id: int | None = None
    base_filled: int = 0
    avg_price: int | None = None
    api_latency_ms: float | None = None
    fill_ms: int | None = None
    price_improvement_bps: float | None = None
    service_failure: bool = False  # the POST itself went unanswered, 429 or 5xx
    user_after: UserSnapshot | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Submit:
    """Send one SwiftOrder; answered with a Pending SwiftResult."""

    order: SwiftOrder
    wait_s: float


@dataclass(frozen=True)
class SwiftProbe:
    """A /health probe result from the health monitor."""

    healthy: bool


@dataclass(frozen=True)
class PlacementOf:
    """Ask hash-status about a recorded order (its `hash_key`); answered with a Pending."""

    hash_key: str


@dataclass(frozen=True)
class IsHealthy:
    """Ask whether Swift is usable now."""


@dataclass(frozen=True)
class HasSignedMsgOrders:
    """Ask whether `authority` has the SignedMsgUserOrders account its Swift orders need."""

    authority: Pubkey


# --- FillTracker -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackedOrder:
    """A published Swift order to follow until it filled or can no longer trade."""

    authority: Pubkey
    sub_account_id: int
    market_index: int
    direction: int
    base_amount: int
    position_before: PerpPositionView
    max_slot: int  # never placed once the chain is past this slot
    max_ts: int  # a placed order cannot fill once the chain's unix time is past this
    deadline: float  # monotonic: past it, the outcome is unknown


@dataclass(frozen=True)
class Track:
    """Follow one order; answered with a Pending TrackResult."""

    order: TrackedOrder


class TrackState(StrEnum):
    """What the fill tracker decided about a published Swift order (TrackResult.state)."""

    FILLED = "filled"  # the position moved by the whole order
    PARTIAL = "partial"  # it moved by some, and the order can no longer trade
    EXPIRED = "expired"  # it did not move, and the order can no longer trade
    UNKNOWN = "unknown"  # no read decided it before its deadline


@dataclass(frozen=True)
class TrackResult:
    """What the fill tracker decided, with the fill it read."""

    state: TrackState
    base_filled: int = 0
    avg_price: int | None = None
    order_id: int | None = None
    slot: int = 0
    user_after: UserSnapshot | None = field(default=None, repr=False)


# --- Flags -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurrentFlags:
    """Ask for the live Swift flags (a trading.routing.SwiftFlags)."""


# --- LegacyExecutor ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadSlot:
    """The current slot."""


@dataclass(frozen=True)
class ReadTradingState:
    """One user's account, one market's account and the slot, in one round trip."""

    authority: Pubkey
    sub_account_id: int
    market_index: int


@dataclass(frozen=True)
class TradingState:
    """Answer to ReadTradingState; `user` is None when the account does not exist."""

    user: UserSnapshot | None
    market: MarketState
    slot: int


@dataclass(frozen=True)
class ReadAccounts:
    """Raw accounts (None where missing) and the context slot, in one getMultipleAccounts."""

    keys: tuple[Pubkey, ...]


@dataclass(frozen=True)
class ReadBlockhash:
    """A fresh blockhash and its last valid block height."""


@dataclass(frozen=True)
class ReadSignature:
    """What became of a sent transaction (block height read first, same endpoint)."""

    signature: str
    last_valid_block_height: int


@dataclass(frozen=True)
class LegacyOrder:
    """A placeAndTakePerpOrder to send for `authority` (signed by `signer`)."""

    signer: Keypair = field(repr=False)
    authority: Pubkey
    sub_account_id: int
    market_index: int
    direction: int  # venue.auction.LONG / SHORT
    base_amount: int
    reduce_only: bool
    oracle_price: int
    slippage_bps: int
    # the send's fence, called with the transaction's signature and last valid block height
    # once it is built, right before it is sent; what it raises (LeaseLost) stops the send
    before_send: Callable[[str, int], None] | None = field(default=None, repr=False)


class LegacyState(StrEnum):
    """What became of an on-chain order (LegacyResult.state)."""

    FILLED = "filled"  # it landed and filled wholly
    PARTIAL = "partial"  # it landed and filled partly
    NOT_FILLED = "not_filled"  # it landed and filled nothing
    FAILED = "failed"  # not sent, or it failed on chain
    UNKNOWN = "unknown"  # no verdict in time (or its fill unread): never send it again blindly


@dataclass(frozen=True)
class LegacyResult:
    """What became of an on-chain order."""

    state: LegacyState
    signature: str | None = None
    base_filled: int = 0
    avg_price: int | None = None
    error: str | None = None
    elapsed_ms: int = 0


@dataclass(frozen=True)
class PlaceAndTake:
    """Send one LegacyOrder and follow it to its outcome."""

    order: LegacyOrder


@dataclass(frozen=True)
class SendTransaction:
    """Build (with a fresh blockhash), send and confirm any transaction (e.g. a transfer)."""

    build: Callable[[Hash], BuiltTx]


@dataclass(frozen=True)
class RpcStatus:
    """The failover state, for status pages."""


# --- HealthMonitor, JournalReplay --------------------------------------------------------------
@dataclass(frozen=True)
class GetHealth:
    """Ask for the last result of every probe."""


@dataclass(frozen=True)
class ReplayJournal:
    """Replay now (told by the webhook when it journaled behind records still waiting)."""


# --- ProfitShare -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubscriberClosed:
    """A subscriber bot's close/reduce order filled (told by its BotActor)."""

    trade_id: str
    entry_base: int  # the position's base_asset_amount BEFORE the close (as it was sized)
    entry_quote: int  # its quote_entry_amount, read BEFORE the close too
    base_filled: int | None = None  # the fill's (None: read from the trade row)
    fill_price: int | None = None  # the fill's, 1e6 (None: read from the trade row)


@dataclass(frozen=True)
class PayDue:
    """Claim and pay the due shares now (the periodic tick sends it too)."""
