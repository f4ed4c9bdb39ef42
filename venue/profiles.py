"""Venue profiles: every venue-specific value (program id, URLs, quote market, markets) as data.

Drift v2 was switched off on 2026-04-01 and relaunched as Velocity under a new program id, so no
venue fact may be a constant in code. A :class:`VenueProfile` carries them; :func:`load_profile`
picks one by ``VENUE`` and applies endpoint overrides from the environment. The Drift profiles
say that their program is paused (``paused_program``): the daemon warns at start, in
``quantumvault status`` and in /readyz's reason.

Market tables come from ``driftpy.constants.perp_markets`` (85 mainnet markets, 29 devnet
markets in driftpy 0.8.89). Those configs carry index, symbol, oracle and oracle source only:
**driftpy has no minimum order size or step size** (they live on chain in
``PerpMarket.amm.min_order_size`` / ``order_step_size``). We therefore do not invent them: a
market's ``min_order_size`` / ``step_size`` are ``None`` ("unknown, let the venue decide") unless
configured with :func:`with_market_sizes`, e.g. from values read on chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

from driftpy.constants.config import DRIFT_PROGRAM_ID
from driftpy.constants.perp_markets import (
    PerpMarketConfig,
    devnet_perp_market_configs,
    mainnet_perp_market_configs,
)
from driftpy.constants.spot_markets import (
    SpotMarketConfig,
    devnet_spot_market_configs,
    mainnet_spot_market_configs,
)
from solders.pubkey import Pubkey

from venue.redact import redact_url

DEFAULT_VENUE = "sandbox"


@dataclass(frozen=True)
class PerpMarket:
    """One perp market: what orders and remaining accounts need to know about it."""

    index: int
    symbol: str
    oracle: Pubkey
    oracle_source: str  # driftpy OracleSource variant name, e.g. "PythLazer", "Prelaunch"
    min_order_size: int | None = None  # base precision 1e9; None = unknown (not in driftpy)
    step_size: int | None = None  # base precision 1e9; None = unknown (not in driftpy)

    def round_to_step(self, base_amount: int) -> int:
        """Round a base amount down to the step size (unchanged when the step is unknown)."""
        if not self.step_size:
            return base_amount
        return base_amount - base_amount % self.step_size

    def below_minimum(self, base_amount: int, reduce_only: bool) -> bool:
        """True when the venue would reject ``base_amount`` as too small (reduce-only exempt)."""
        if reduce_only or self.min_order_size is None:
            return False
        return base_amount < self.min_order_size


@dataclass(frozen=True)
class ProgramPause:
    """A venue whose program is known to refuse every order: since when, and the fact."""

    since: str  # ISO date
    fact: str

    def warning(self, venue: str) -> str:
        """One line for logs, `quantumvault status` and /readyz."""
        return f"venue {venue}: its program is paused since {self.since}: {self.fact}"


# Drift v2 on mainnet: paused by the protocol itself (the fact below says how)
DRIFT_V2_PAUSED = ProgramPause(
    since="2026-04-01",
    fact="every instruction of the Drift v2 program was disabled (protocol-v2 #2174, "
         "\"comment out all ixs\"); orders and deposits will fail on chain. Drift relaunched as "
         "Velocity under a new program id: VENUE=velocity")


@dataclass(frozen=True, repr=False)
class VenueProfile:
    """All venue-specific configuration; its repr never shows URL secrets."""

    name: str
    program_id: Pubkey
    swift_base_url: str
    rpc_primary_url: str
    rpc_backup_url: str | None
    quote_spot_market_index: int
    quote_mint: Pubkey
    quote_oracle: Pubkey
    markets: Mapping[int, PerpMarket] = field(compare=False)
    slot_time_ms: int = 400
    # Swift market orders' Dutch auction: 10 slots (~4 s) lets an unfilled order fall back
    # within ~5 s of the alert; the venue's own UI signs 10-20
    auction_duration_slots: int = 10
    provisional: frozenset[str] = frozenset()
    spot_oracles: Mapping[int, Pubkey] = field(default_factory=dict, compare=False)
    quote_decimals: int = 6
    paused_program: ProgramPause | None = None  # the program is known to refuse every order

    def spot_oracle(self, index: int) -> Pubkey:
        """Oracle of spot market ``index`` (remaining accounts need it for any spot position)."""
        if index == self.quote_spot_market_index:
            return self.quote_oracle
        try:
            return self.spot_oracles[index]
        except KeyError:
            raise ValueError(f"spot market {index} is not in venue profile {self.name}") from None

    def market(self, index: int) -> PerpMarket:
        """Return perp market ``index`` or raise ValueError naming the profile."""
        try:
            return self.markets[index]
        except KeyError:
            raise ValueError(f"perp market {index} is not in venue profile {self.name}") from None

    def market_by_symbol(self, symbol: str) -> PerpMarket:
        """Look a market up by symbol, case-insensitively ("sol-perp" finds "SOL-PERP")."""
        wanted = symbol.strip().upper()
        for market in self.markets.values():
            if market.symbol.upper() == wanted:
                return market
        raise ValueError(f"perp market {symbol!r} is not in venue profile {self.name}")

    def describe(self) -> dict[str, object]:
        """A loggable summary (URLs redacted) including which values are provisional."""
        return {
            "venue": self.name,
            "program_id": str(self.program_id),
            "swift_base_url": redact_url(self.swift_base_url),
            "rpc_primary_url": redact_url(self.rpc_primary_url),
            "rpc_backup_url": redact_url(self.rpc_backup_url),
            "quote_spot_market_index": self.quote_spot_market_index,
            "quote_mint": str(self.quote_mint),
            "markets": len(self.markets),
            "slot_time_ms": self.slot_time_ms,
            "auction_duration_slots": self.auction_duration_slots,
            "provisional": sorted(self.provisional),
            "paused_program": (None if self.paused_program is None else
                               {"since": self.paused_program.since,
                                "fact": self.paused_program.fact}),
        }

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"VenueProfile({inner})"

    __str__ = __repr__


def _market_table(configs: Iterable[PerpMarketConfig]) -> Mapping[int, PerpMarket]:
    table = {
        c.market_index: PerpMarket(
            index=c.market_index,
            symbol=c.symbol,
            oracle=c.oracle,
            oracle_source=type(c.oracle_source).__name__,
        )
        for c in configs
    }
    return MappingProxyType(table)


def with_market_sizes(
    profile: VenueProfile, sizes: Mapping[int, tuple[int, int]]
) -> VenueProfile:
    """Return a copy of ``profile`` with (min_order_size, step_size) set for some markets."""
    table = dict(profile.markets)
    for index, (min_size, step) in sizes.items():
        if min_size <= 0 or step <= 0:
            raise ValueError(f"market {index}: sizes must be positive")
        table[index] = dataclasses.replace(profile.market(index), min_order_size=min_size,
                                           step_size=step)
    return dataclasses.replace(profile, markets=MappingProxyType(table))


def _spot_oracles(configs: Iterable[SpotMarketConfig]) -> Mapping[int, Pubkey]:
    return MappingProxyType({c.market_index: c.oracle for c in configs})


_MAINNET_USDC = mainnet_spot_market_configs[0]
_DEVNET_USDC = devnet_spot_market_configs[0]
_MAINNET_USDT = next(c for c in mainnet_spot_market_configs if c.symbol == "USDT")


def _quote(config: SpotMarketConfig) -> dict[str, Any]:
    """A profile's quote fields for the spot market ``config``."""
    return {"quote_spot_market_index": config.market_index, "quote_mint": config.mint,
            "quote_oracle": config.oracle}


def _base_profiles() -> dict[str, VenueProfile]:
    """Every profile: Drift mainnet, and the others as what they change of it."""
    mainnet = VenueProfile(
        name="drift-mainnet",
        program_id=DRIFT_PROGRAM_ID,
        swift_base_url="https://swift.drift.trade",
        rpc_primary_url="https://api.mainnet-beta.solana.com",
        rpc_backup_url=None,
        **_quote(_MAINNET_USDC),
        markets=_market_table(mainnet_perp_market_configs),
        spot_oracles=_spot_oracles(mainnet_spot_market_configs),
        paused_program=DRIFT_V2_PAUSED,
    )
    devnet = dataclasses.replace(
        mainnet,
        name="drift-devnet",
        swift_base_url="https://master.swift.drift.trade",
        rpc_primary_url="https://api.devnet.solana.com",
        **_quote(_DEVNET_USDC),
        markets=_market_table(devnet_perp_market_configs),
        spot_oracles=_spot_oracles(devnet_spot_market_configs),
    )
    # Velocity relaunch: program id from velocity-exchange/velocity-v1 declare_id! (non
    # "mainnet-beta" build), Swift host from its SDK config, USDT as quote. The quote spot
    # market index (Drift mainnet's), its oracle and the market table are assumed to mirror
    # Drift mainnet until Velocity publishes its own tables: all of these are provisional.
    velocity = dataclasses.replace(
        mainnet,
        name="velocity",
        program_id=Pubkey.from_string("vELoC1audYbSYVRXn1vPaV8Axoa9oU6BYmNGZZBDZ1P"),
        swift_base_url="https://swift.velocity.exchange",
        quote_mint=_MAINNET_USDT.mint,
        quote_oracle=_MAINNET_USDT.oracle,
        provisional=frozenset(
            {"program_id", "swift_base_url", "quote_spot_market_index", "quote_mint",
             "quote_oracle", "markets", "spot_oracles"}
        ),
        paused_program=None,
    )
    # Local simulator: Drift's program id so driftpy PDAs and decoders apply unchanged, the
    # mainnet market table, and URLs that are only known once the sandbox is running.
    sandbox = dataclasses.replace(mainnet, name="sandbox", swift_base_url="",
                                  rpc_primary_url="", paused_program=None)
    return {profile.name: profile for profile in (mainnet, devnet, velocity, sandbox)}


PROFILES: Mapping[str, VenueProfile] = MappingProxyType(_base_profiles())

_HELIUS_HOST = {"drift-devnet": "devnet.helius-rpc.com"}


def _checked_url(variable: str, value: str) -> str:
    """Validate an http(s) URL from ``variable``; errors name the variable, never the value."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{variable} must be an http(s) URL")
    return value.rstrip("/") if not parts.query else value


def load_profile(env: Mapping[str, str], *, sandbox_url: str | None = None) -> VenueProfile:
    """Pick the profile named by ``VENUE`` (default sandbox) and apply endpoint overrides.

    Precedence for endpoints: ``SWIFT_API_URL`` / ``RPC_PRIMARY_URL`` / ``RPC_BACKUP_URL``, then
    ``HELIUS_API_KEY`` (primary) and ``TRITON_ONE_RPC`` (backup, a full URL), then the profile's
    defaults. The sandbox profile takes its address from ``sandbox_url`` or ``SANDBOX_URL`` and
    deliberately ignores ``HELIUS_API_KEY`` / ``TRITON_ONE_RPC``: paper trading must never reach
    a real RPC by accident.
    """
    name = (env.get("VENUE") or DEFAULT_VENUE).strip()
    if name not in PROFILES:
        raise ValueError(f"VENUE={name!r} is not one of {sorted(PROFILES)}")
    profile = PROFILES[name]
    swift, primary, backup = profile.swift_base_url, profile.rpc_primary_url, profile.rpc_backup_url

    if name == "sandbox":
        base = sandbox_url or env.get("SANDBOX_URL")
        if base:
            base = _checked_url("SANDBOX_URL", base)
            swift = primary = base
    else:
        if env.get("HELIUS_API_KEY"):
            host = _HELIUS_HOST.get(name, "mainnet.helius-rpc.com")
            primary = f"https://{host}/?api-key={quote(env['HELIUS_API_KEY'].strip(), safe='')}"
        if env.get("TRITON_ONE_RPC"):
            backup = _checked_url("TRITON_ONE_RPC", env["TRITON_ONE_RPC"])

    if env.get("SWIFT_API_URL"):
        swift = _checked_url("SWIFT_API_URL", env["SWIFT_API_URL"])
    if env.get("RPC_PRIMARY_URL"):
        primary = _checked_url("RPC_PRIMARY_URL", env["RPC_PRIMARY_URL"])
    if env.get("RPC_BACKUP_URL"):
        backup = _checked_url("RPC_BACKUP_URL", env["RPC_BACKUP_URL"])

    if not swift or not primary:
        raise ValueError(
            "VENUE=sandbox needs SANDBOX_URL (or SWIFT_API_URL and RPC_PRIMARY_URL)"
        )
    return dataclasses.replace(
        profile, swift_base_url=swift, rpc_primary_url=primary, rpc_backup_url=backup
    )
