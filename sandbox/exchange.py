"""The sandbox exchange state and what happens to it on every slot.

One ``Exchange`` owns all mutable venue state (users, SignedMsgUserOrders accounts, token
accounts, pending Swift orders, landed transactions, counters) and the slot clock that drives
it. HTTP handlers call into it; no handler keeps state of its own. Mutations never yield to
gevent, and an RLock also guards them, so a slot tick and a request never interleave halfway.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field, fields, replace
from hashlib import sha256
from typing import Any

from driftpy.addresses import get_perp_market_public_key
from driftpy.constants.numeric_constants import QUOTE_PRECISION
from solders.hash import Hash
from solders.pubkey import Pubkey

from sandbox import codec, margin, swift_orders
from sandbox.accounts import (
    CLOCK_SYSVAR_ID,
    SLOTS_PER_EPOCH,
    SYSTEM_PROGRAM_ID,
    SYSVAR_OWNER_ID,
    TOKEN_PROGRAM_ID,
    OrderState,
    SignedMsgOrdersState,
    TokenAccountState,
    UserState,
    associated_token_address,
    encode_clock,
    encode_perp_market,
    encode_user_stats,
    user_address,
    user_stats_address,
)
from sandbox.clock import SlotClock
from sandbox.faults import Faults
from sandbox.makers import (
    FILL_PROFILES,
    LiquidityBook,
    auction_price,
    maker_accepts,
    round_to_step,
)
from sandbox.markets import QUOTE_MINT, MarketSpec, default_markets
from sandbox.oracle import OracleBook
from sandbox.ratelimit import RpcRateLimiter
from sandbox.stats import Stats

BLOCKHASH_VALID_SLOTS = 150
FINALIZED_AFTER_SLOTS = 32
DEFAULT_SIGNED_MSG_ORDERS = 8
MAX_FILL_LOG = 100_000  # oldest half dropped beyond this (GET /sandbox/fills)
MAX_SWIFT_POSTS = 100_000  # same bound for GET /sandbox/swift-posts
CLOCK_SYSVAR_LAMPORTS = 1_169_280


@dataclass
class ExchangeConfig:
    """Tunable behaviour of the simulated venue."""

    maker_edge_bps: float = -10.0  # makers fill once the auction is within this of the oracle
    taker_fee_bps: float = 0.0
    slippage_bps: float = 5.0  # placeAndTake fills at oracle +/- this
    placement_delay_slots: int = 1  # slots between Swift acceptance and on-chain placement
    signed_msg_release_slots: int = 10  # SignedMsgUserOrders entry reusable this long after
    hash_ttl_ms: int = 180_000  # hash-status entries live this long (chain time)
    slot_too_old: int = 500
    reduce_only_size_exempt: bool = False  # the real Swift server does not exempt reduce-only
    fill_profile: str = "edge"  # when makers fill Swift auctions: "edge" or "v3" (makers.py)
    v3_fast_share: float = 0.85  # v3: share of orders filled 1-2 slots after their signed slot
    v3_late_share: float = 0.10  # v3: share filled later in the auction (rest: never)


@dataclass
class TxRecord:
    """A transaction the sandbox has seen land (successfully or not)."""

    slot: int
    err: Any = None
    logs: list[str] = field(default_factory=list)


class Exchange:
    """All venue state plus the per-slot evolution (oracle, placement, fills, expiry)."""

    def __init__(self, seed: int = 0, slot_ms: int = 400,
                 markets: dict[int, MarketSpec] | None = None,
                 config: ExchangeConfig | None = None,
                 genesis_ts: float | None = None) -> None:
        self.seed = int(seed)
        self.config = config or ExchangeConfig()
        self.markets = markets or default_markets()
        self.clock = SlotClock(slot_ms=slot_ms, genesis_ts=genesis_ts)
        self.oracles = OracleBook(self.seed, self.markets)
        self.liquidity = LiquidityBook()
        self.faults = Faults()
        self.stats = Stats()
        self.lock = threading.RLock()
        self.users: dict[Pubkey, UserState] = {}
        self.user_stats: dict[Pubkey, int] = {}
        self.signed_msg: dict[Pubkey, SignedMsgOrdersState] = {}
        self.tokens: dict[Pubkey, TokenAccountState] = {}
        self.lamports: dict[Pubkey, int] = {}
        self.pending: list[swift_orders.PendingSwift] = []
        self.hashes: dict[str, tuple[int, int]] = {}  # hash -> (order id, slot recorded)
        self.transactions: dict[str, TxRecord] = {}
        self.fill_log: list[dict[str, Any]] = []
        self.swift_posts: list[dict[str, Any]] = []  # GET /sandbox/swift-posts
        self.fill_rng = random.Random(f"fills:{self.seed}")  # v3 fill-slot draws
        self.rpc_limiter = RpcRateLimiter()
        self._market_addresses: dict[Pubkey, MarketSpec] | None = None
        self._market_bytes: dict[int, tuple[tuple[int, int, int], bytes]] = {}
        self.clock.add_listener(self._on_slot)

    # ----- reads -------------------------------------------------------------------------

    @property
    def slot(self) -> int:
        """The current slot."""
        return self.clock.slot

    def blockhash(self, slot: int | None = None) -> Hash:
        """The deterministic blockhash of a slot (seeded)."""
        s = self.slot if slot is None else slot
        return Hash(sha256(f"sandbox:{self.seed}:{s}".encode()).digest())

    def blockhash_valid(self, blockhash: Hash) -> bool:
        """True if ``blockhash`` belongs to one of the last BLOCKHASH_VALID_SLOTS slots."""
        now = self.slot
        lo = max(self.clock.genesis_slot, now - BLOCKHASH_VALID_SLOTS)
        return any(self.blockhash(s) == blockhash for s in range(now, lo - 1, -1))

    def account_data(self, address: Pubkey) -> tuple[bytes, Pubkey, int] | None:
        """(data, owner, lamports) of an account the sandbox serves, or None."""
        if address == CLOCK_SYSVAR_ID:
            return self.clock_sysvar(), SYSVAR_OWNER_ID, CLOCK_SYSVAR_LAMPORTS
        with self.lock:
            user = self.users.get(address)
            if user is not None:
                return user.to_bytes(), codec.PROGRAM_ID, 35_000_000
            for sm in self.signed_msg.values():
                if sm.address == address:
                    return sm.to_bytes(), codec.PROGRAM_ID, 2_000_000
            for auth, count in self.user_stats.items():
                if user_stats_address(auth) == address:
                    return encode_user_stats(auth, count, 0), codec.PROGRAM_ID, 2_000_000
            tok = self.tokens.get(address)
            if tok is not None:
                return tok.to_bytes(), TOKEN_PROGRAM_ID, 2_039_280
            market = self._market_by_address(address)
            if market is not None:
                price = self.oracles.price(market.market_index)
                key = (market.market_index, self.slot, price)
                cached = self._market_bytes.get(market.market_index)
                if cached is None or cached[0] != key:
                    cached = (key, encode_perp_market(market, price, self.slot))
                    self._market_bytes[market.market_index] = cached
                return cached[1], codec.PROGRAM_ID, 100_000_000
            lamports = self.lamports.get(address)
            if lamports is not None:
                return b"", SYSTEM_PROGRAM_ID, lamports
        return None

    def clock_sysvar(self) -> bytes:
        """The Clock sysvar at the current slot (unix_timestamp = ``clock.unix_ts()``)."""
        clock = self.clock
        slot = clock.slot
        epoch = slot // SLOTS_PER_EPOCH
        return encode_clock(slot, clock.unix_ts_at(epoch * SLOTS_PER_EPOCH), epoch, epoch + 1,
                            clock.unix_ts_at(slot))

    def _market_by_address(self, address: Pubkey) -> MarketSpec | None:
        if self._market_addresses is None:
            self._market_addresses = {get_perp_market_public_key(codec.PROGRAM_ID, i): m
                                      for i, m in self.markets.items()}
        return self._market_addresses.get(address)

    def update_config(self, changes: dict[str, Any]) -> None:
        """Change ExchangeConfig fields at runtime; ValueError on unknown names or bad types."""
        known = {f.name: f for f in fields(ExchangeConfig)}
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown config field(s): {sorted(unknown)}")
        with self.lock:
            trial = replace(self.config)
            for name, value in changes.items():
                current = getattr(trial, name)
                if isinstance(current, bool):
                    if not isinstance(value, bool):
                        raise ValueError(f"{name} must be true or false")
                elif isinstance(current, str):
                    if not isinstance(value, str):
                        raise ValueError(f"{name} must be a string")
                elif not isinstance(value, int | float) or isinstance(value, bool):
                    raise ValueError(f"{name} must be a number")
                setattr(trial, name, type(current)(value))
            if trial.placement_delay_slots < 0 or trial.hash_ttl_ms < 0:
                raise ValueError("delays must be non-negative")
            if trial.fill_profile not in FILL_PROFILES:
                raise ValueError(f"fill_profile must be one of {FILL_PROFILES}")
            fast, late = trial.v3_fast_share, trial.v3_late_share
            if not (0.0 <= fast <= 1.0 and 0.0 <= late <= 1.0 and fast + late <= 1.0):
                raise ValueError("v3_fast_share and v3_late_share must be within 0..1 and sum "
                                 "to at most 1")
            self.config = trial

    # ----- account creation ----------------------------------------------------------------

    def ensure_user_stats(self, authority: Pubkey) -> None:
        """Create the UserStats account of ``authority`` if missing."""
        self.user_stats.setdefault(authority, 0)

    def create_user(self, authority: Pubkey, sub_account_id: int = 0,
                    name: bytes = b"Main Account") -> UserState:
        """Create (or return) a User account; the stats account must exist for real ixs."""
        with self.lock:
            addr = user_address(authority, sub_account_id)
            user = self.users.get(addr)
            if user is None:
                user = UserState(authority=authority, sub_account_id=sub_account_id, name=name)
                user.touch(self.slot)
                self.users[addr] = user
                self.user_stats[authority] = self.user_stats.get(authority, 0) + 1
            return user

    def create_signed_msg_orders(self, authority: Pubkey,
                                 num_orders: int = DEFAULT_SIGNED_MSG_ORDERS) -> None:
        """Create the SignedMsgUserOrders account of ``authority`` if missing."""
        with self.lock:
            if authority not in self.signed_msg:
                self.signed_msg[authority] = SignedMsgOrdersState(authority, int(num_orders))

    def token_account(self, owner: Pubkey, mint: Pubkey = QUOTE_MINT) -> TokenAccountState:
        """The owner's associated token account, created empty on first use."""
        addr = associated_token_address(owner, mint)
        tok = self.tokens.get(addr)
        if tok is None:
            tok = TokenAccountState(address=addr, mint=mint, owner=owner)
            self.tokens[addr] = tok
        return tok

    def faucet(self, authority: Pubkey, quote: int, wallet_quote: int = 0,
               sol_lamports: int = 10_000_000_000,
               num_orders: int = DEFAULT_SIGNED_MSG_ORDERS,
               create_user: bool = True) -> UserState | None:
        """Fund ``authority``: User (sub-account 0) with ``quote`` deposited (token units),
        its SignedMsgUserOrders account, SOL for fees and ``wallet_quote`` in its token account.
        With ``create_user=False`` only the wallet (SOL, token account) is funded."""
        with self.lock:
            self.token_account(authority).amount += int(wallet_quote)
            self.lamports[authority] = self.lamports.get(authority, 0) + int(sol_lamports)
            self.stats.incr("faucet", str(authority))
            if not create_user:
                return None
            user = self.create_user(authority)
            self.create_signed_msg_orders(authority, num_orders)
            if quote:
                user.quote_balance += int(quote)
                user.total_deposits += int(quote)
            user.touch(self.slot)
            return user

    # ----- fills -----------------------------------------------------------------------------

    def fill(self, user: UserState, order: OrderState, base: int, price: int,
             source: str) -> None:
        """Book a fill of ``base`` of ``order`` at ``price`` (logged with the wall time)."""
        fee = margin.quote_for(base, price) * int(self.config.taker_fee_bps) // 10_000
        quote = margin.apply_fill(user, order.market_index, order.sign, base, price, fee)
        order.base_filled += base
        order.quote_filled += quote
        if order.remaining <= 0:
            order.status = "filled"
        user.touch(self.slot)
        self.fill_log.append({
            "slot": self.slot, "authority": str(user.authority),
            "sub_account_id": user.sub_account_id, "order_id": order.order_id,
            "market_index": order.market_index, "direction": order.direction, "base": base,
            "price": price, "quote": quote, "fee": fee, "source": source,
            "chain_ts": self.clock.unix_ts(), "at": time.time(),
        })
        if order.fill_bucket:
            self.fill_log[-1].update(order_slot=order.slot, profile_bucket=order.fill_bucket)

    def new_order_id(self, user: UserState) -> int:
        """Allocate the user's next order id."""
        oid = user.next_order_id
        user.next_order_id += 1
        return oid

    # ----- the slot loop -----------------------------------------------------------------

    def _on_slot(self, slot: int) -> None:
        with self.lock:
            self.oracles.advance()
            swift_orders.place_pending(self, slot)
            self._run_makers(slot)
            self._expire(slot)
            self._prune_hashes(slot)
            if len(self.fill_log) > MAX_FILL_LOG:
                del self.fill_log[: MAX_FILL_LOG // 2]

    def _run_makers(self, slot: int) -> None:
        now_ts = self.clock.unix_ts()
        paused = self.faults.makers_paused or self.faults.swift_makers_paused
        paused_for = set(filter(None, self.faults.swift_makers_paused_for.split(",")))
        for user in self.users.values():
            if str(user.authority) in paused_for:
                continue  # no maker bids for this taker's Swift orders (its auctions run out)
            for order in user.open_orders():
                if not order.signed:
                    continue
                if order.max_ts and now_ts > order.max_ts:
                    continue  # the program expires it (fill_perp_order) rather than fill it
                oracle = self.oracles.price(order.market_index)
                price = auction_price(order, slot, oracle, max(0, order.max_ts - now_ts))
                if price is None or paused:
                    continue
                liq = self.liquidity.get(order.market_index)
                if liq.mode == "none" or not order.maker_budget:
                    continue
                if order.fill_bucket:  # v3 profile: the slot drawn at placement decides
                    if order.fill_offset is None or slot < order.slot + order.fill_offset:
                        continue
                elif not maker_accepts(order, price, oracle, self.config.maker_edge_bps):
                    continue
                size = min(order.remaining, order.maker_budget)
                if order.reduce_only:
                    size = min(size, margin.reducible(user, order.market_index, order.sign))
                size = round_to_step(size, self.markets[order.market_index].step_size)
                if size <= 0:
                    continue
                order.maker_budget -= size
                self.fill(user, order, size, price, "swift_maker")
                self.stats.incr("swift_orders_filled" if order.status == "filled"
                                else "swift_orders_partially_filled", str(user.authority))
                if order.fill_bucket:
                    self.stats.incr(f"v3_fills_{order.fill_bucket}")

    def _expire(self, slot: int) -> None:
        """The program's expire_orders: an open order with max_ts != 0 leaves the account at the
        first slot whose unix time is past max_ts. A Market order does not end with its auction
        (placement gave it a default max_ts, see swift_orders._place)."""
        now_ts = self.clock.unix_ts()
        for user in self.users.values():
            changed = False
            for order in user.open_orders():
                if order.max_ts and now_ts > order.max_ts:
                    order.status = "canceled"
                    changed = True
                    self.stats.incr("orders_expired", str(user.authority))
            if changed or any(o.status != "open" for o in user.orders):
                user.orders = [o for o in user.orders if o.status == "open"]
                user.touch(slot)

    def _prune_hashes(self, slot: int) -> None:
        ttl_slots = self.config.hash_ttl_ms // (self.clock.slot_ms or 400)
        stale = [h for h, (_, at) in self.hashes.items() if slot - at > ttl_slots]
        for h in stale:
            del self.hashes[h]

    # ----- snapshots ---------------------------------------------------------------------

    def state_digest(self) -> str:
        """A hash of all account bytes and prices: equal digests mean equal venue states."""
        h = sha256()
        with self.lock:
            h.update(str(self.slot).encode())
            for idx, price in sorted(self.oracles.prices().items()):
                h.update(f"{idx}:{price};".encode())
            for addr in sorted(self.users, key=bytes):
                h.update(bytes(addr))
                h.update(self.users[addr].to_bytes())
            for auth in sorted(self.signed_msg, key=bytes):
                h.update(self.signed_msg[auth].to_bytes())
        return h.hexdigest()

    def describe_user(self, authority: Pubkey, sub_account_id: int = 0) -> dict[str, Any] | None:
        """A JSON-able summary of a user (GET /sandbox/user)."""
        with self.lock:
            user = self.users.get(user_address(authority, sub_account_id))
            if user is None:
                return None
            return {
                "authority": str(user.authority),
                "sub_account_id": user.sub_account_id,
                "user": str(user.address),
                "quote_balance": user.quote_balance,
                "quote_balance_usd": user.quote_balance / QUOTE_PRECISION,
                "free_collateral": margin.free_collateral(user, self.markets,
                                                          self.oracles.prices()),
                "positions": [
                    {"market_index": p.market_index, "base_asset_amount": p.base_asset_amount,
                     "quote_asset_amount": p.quote_asset_amount,
                     "quote_entry_amount": p.quote_entry_amount}
                    for p in user.positions.values() if p.base_asset_amount
                ],
                "open_orders": [
                    {"order_id": o.order_id, "market_index": o.market_index,
                     "direction": o.direction, "base": o.base_asset_amount,
                     "filled": o.base_filled}
                    for o in user.open_orders()
                ],
                "signed_msg_user_orders": authority in self.signed_msg,
            }
