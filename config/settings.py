"""The table of environment variables: name, default, parser and meaning, in one place.

`quantumvault --help` prints this table, the README mirrors it, and an invalid value stops
start-up with one line naming the variable. Secrets (API keys, tokens) are never echoed back.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """An environment variable holds a value the daemon cannot use."""


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"expected an integer in {low}..{high}")
        return value

    return parse


def _float_range(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"expected a number in {low}..{high}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(raw: str) -> Any:
        return parse(raw) if raw.strip() else None

    return parse_optional


def _text(raw: str) -> str:
    return raw.strip()


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _networks(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks; an entry that is neither is named."""
    items = _list(raw)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return items


ADMIN_TOKEN_MIN_CHARS = 32


def _admin_token(raw: str) -> str:
    """Empty (generated) or at least ADMIN_TOKEN_MIN_CHARS characters; the value is never echoed."""
    token = raw.strip()
    if token and len(token) < ADMIN_TOKEN_MIN_CHARS:
        raise ValueError(f"must be at least {ADMIN_TOKEN_MIN_CHARS} characters (or empty to "
                         "generate one into STATE_DIR/admin_token)")
    return token


def _key_ids(raw: str) -> tuple[str, ...]:
    """Comma-separated server key ids."""
    items = _list(raw)
    for item in items:
        if not all(c.isascii() and (c.isalnum() or c in "._:-") for c in item) or len(item) > 64:
            raise ValueError(f"{item!r} is not a key id ([A-Za-z0-9._:-]{{1,64}})")
    return items


def _workers(raw: str) -> int:
    """A number of worker processes, or `auto`: one per core."""
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    return _int_range(0, 256)(raw)


def _markets(raw: str) -> tuple[str, ...]:
    return tuple(m.upper() for m in _list(raw))


@dataclass(frozen=True)
class Setting:
    """One environment variable."""

    name: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", "", _text,
            "PostgreSQL URL; empty starts an embedded server under STATE_DIR", secret=True),
    Setting("STATE_DIR", ".state", _path,
            "where the embedded database and the admin token live (systemd: $STATE_DIRECTORY)"),
    Setting("WEBHOOK_HOST", "127.0.0.1", _text, "address of the webhook/API server"),
    Setting("WEBHOOK_PORT", "8080", _int_range(0, 65535), "port of the webhook/API server"),
    Setting("METRICS_PORT", "9464", _int_range(0, 65535), "port of the Prometheus /metrics server"),
    Setting("ADMIN_TOKEN", "", _admin_token,
            "bearer token for admin endpoints (at least 32 characters); empty: generated into"
            " STATE_DIR/admin_token", secret=True),
    Setting("ADMIN_HOST", "127.0.0.1", _text,
            "address of the admin/ops listener (admin API, crash drills, health); keep it"
            " private"),
    Setting("ADMIN_PORT", "8081", _int_range(0, 65535),
            "port of the admin/ops listener (`quantumvault status` and `crash` use it)"),
    Setting("CRASH_DRILLS_ENABLED", "false", _bool,
            "allow POST /api/admin/crash/{actor} (`quantumvault crash`); off in production"),
    Setting("LOG_LEVEL", "INFO", _choice("debug", "info", "warning", "error"),
            "log level of the JSON log lines on stderr"),
    Setting("DB_POOL_SIZE", "20", _int_range(1, 500), "database connections per process"),
    Setting("DB_STATEMENT_TIMEOUT_MS", "10000", _int_range(100, 600_000),
            "PostgreSQL statement_timeout for every query"),
    Setting("SUPERVISOR_MAX_RESTARTS", "10", _int_range(0, 10_000),
            "restarts allowed per supervisor within SUPERVISOR_PERIOD_S before it gives up"),
    Setting("SUPERVISOR_PERIOD_S", "60", _float_range(0.1, 86_400),
            "window of the restart intensity"),
    Setting("SUPERVISOR_BACKOFF_BASE_MS", "100", _int_range(0, 60_000),
            "first restart delay; doubles per consecutive restart, with jitter"),
    Setting("SUPERVISOR_BACKOFF_CAP_MS", "30000", _int_range(0, 600_000),
            "longest restart delay"),
    Setting("HEALTH_INTERVAL_MS", "5000", _int_range(100, 600_000),
            "period of the health monitor's probes and of the systemd watchdog ping"),
    Setting("SWIFT_ENABLED", "true", _bool,
            "global Swift switch (false: every order legacy); live: `quantumvault flags set`"),
    Setting("SWIFT_FALLBACK_ENABLED", "true", _bool,
            "a failed Swift order may go on-chain (if its bot allows it too); live"),
    Setting("SWIFT_RETRY_WITH_SWIFT", "true", _bool,
            "retryable Swift refusals (429, 503, slot too old) and retry jobs try Swift again"
            " (false: retries go on-chain); live"),
    Setting("SWIFT_API_URL", "", _text, "override of the venue profile's Swift base URL"),
    Setting("SWIFT_ORDER_TIMEOUT_MS", "3000", _int_range(100, 60_000),
            "timeout of one Swift order submission"),
    Setting("SWIFT_HEALTH_CHECK_INTERVAL_MS", "30000", _int_range(1000, 3_600_000),
            "period of the Swift /health probe"),
    Setting("SWIFT_MAX_RETRIES_BEFORE_FALLBACK", "2", _int_range(0, 100),
            "Swift retries of a trade (re-signed, with backoff) before it goes legacy"),
    Setting("SWIFT_ROLLOUT_PERCENT", "100", _int_range(0, 100),
            "share of bots (stable per bot) whose orders try Swift first; live"),
    Setting("SWIFT_CRITICAL_ORDERS_LEGACY", "false", _bool,
            "send critical orders (closes) on-chain, never through Swift; live"),
    Setting("SWIFT_RATE_PER_S", "100", _float_range(0.1, 10_000),
            "Swift submissions per second the gateway allows (sustained; the Swift server has"
            " no rate limiter of its own, an edge in front of it may)"),
    Setting("SWIFT_RATE_BURST", "600", _int_range(1, 100_000),
            "Swift submissions in a burst (sized for a 500-subscriber fan-out)"),
    Setting("SWIFT_MAX_IN_FLIGHT", "64", _int_range(1, 10_000),
            "Swift POSTs on the wire at once; more wait in line within their auction window"),
    Setting("SWIFT_FAILURES_UNHEALTHY", "3", _int_range(1, 100),
            "consecutive Swift service failures that mark Swift unhealthy"),
    Setting("AUCTION_DURATION_SLOTS", "", _optional(_int_range(1, 255)),
            "Dutch auction length of Swift market orders; empty: the venue profile's (10)"),
    Setting("AUCTION_START_BPS", "-10", _int_range(-1000, 1000),
            "auction start offset from the oracle, in the taker's favour (bps)"),
    Setting("AUCTION_END_BPS", "10", _int_range(-1000, 1000),
            "auction end offset from the oracle, against the taker (bps)"),
    Setting("LEGACY_SLIPPAGE_BPS", "50", _int_range(1, 5000),
            "price limit of on-chain market orders around the oracle (bps)"),
    Setting("LEGACY_MAX_IN_FLIGHT", "16", _int_range(1, 1000),
            "on-chain sendTransaction calls on the wire at once; more wait their turn"
            " (confirmation holds none: one batched status read a slot follows every open"
            " transaction)"),
    Setting("EXECUTION_BUDGET_MS", "45000", _int_range(1000, 600_000),
            "total time for one order: the Swift attempt (through its auction) plus fallback"),
    Setting("PROFIT_SHARE_INTERVAL_S", "300", _float_range(0.1, 86_400),
            "period of the profit-share IOU job, and the delay between IOU attempts"),
    Setting("PROFIT_SHARE_MAX_ATTEMPTS", "50", _int_range(1, 10_000),
            "payment attempts before an IOU is void"),
    Setting("PROFIT_SHARE_TTL_S", "604800", _float_range(1, 31_536_000),
            "age at which an unpaid IOU is void (7 days)"),
    Setting("RETRY_TICK_MS", "1000", _int_range(50, 60_000),
            "how often the retry scheduler claims due jobs"),
    Setting("RETRY_LEASE_S", "120", _float_range(1, 3600),
            "claim lease of a retry job; must outlast a Swift auction and a blockhash (~60 s)"),
    Setting("DRAIN_TIMEOUT_S", "30", _float_range(0, 600),
            "on SIGTERM, how long orders in flight may take to reach an outcome before the tree"
            " stops (alerts meanwhile are still accepted; they run after the restart); keep it"
            " under systemd's TimeoutStopSec"),
    Setting("BOT_LEASE_TTL_S", "15", _float_range(3, 3600),
            "life of a worker's lease on its bots (renewed every third of it): how long the bots"
            " of a worker that died wait before another worker takes them over"),
    Setting("WORKERS", "auto", _workers,
            "worker processes `run` starts beside its intake process (auto: one per core; 0:"
            " the intake process executes the bots itself)"),
    Setting("SIGNAL_STALE_S", "300", _float_range(1, 86_400),
            "a signal a crash interrupted before any order left runs again after the restart"
            " unless older than this (reduce-only signals never go stale)"),
    Setting("JOURNAL_MAX_BYTES", "16777216", _int_range(65_536, 2**40),
            "largest size of the local alert journal (STATE_DIR/journal) kept while the database"
            " is unreachable; an alert that does not fit answers 503"),
    Setting("JOURNAL_MAX_AGE_S", "3600", _float_range(1, 7 * 86_400),
            "longest database outage the journal covers: once its oldest alert is older, new"
            " alerts answer 503"),
    Setting("SWIFT_SUPPORTED_MARKETS", "", _markets,
            "optional Swift market allowlist (comma-separated); empty: every perp market; live"),
    Setting("VENUE", "sandbox", _choice("sandbox", "drift-mainnet", "drift-devnet", "velocity"),
            "venue profile"),
    Setting("RPC_PRIMARY_URL", "", _text, "override of the profile's primary RPC", secret=True),
    Setting("RPC_BACKUP_URL", "", _text, "override of the profile's backup RPC", secret=True),
    Setting("HELIUS_API_KEY", "", _text, "primary RPC via Helius: its API key (real venues"
            " only; `RPC_PRIMARY_URL` overrides it)", secret=True),
    Setting("TRITON_ONE_RPC", "", _text, "backup RPC via Triton One: its full URL (real venues"
            " only; `RPC_BACKUP_URL` overrides it)", secret=True),
    Setting("SANDBOX_URL", "", _text,
            "an already running sandbox; empty with VENUE=sandbox starts one as a child"),
    Setting("SANDBOX_PORT", "8900", _int_range(0, 65535),
            "port of the sandbox child started by `run` (127.0.0.1)"),
    Setting("SANDBOX_SEED", "1", _int_range(0, 2**31 - 1), "seed of the sandbox child"),
    Setting("SANDBOX_SLOT_MS", "400", _int_range(10, 10_000),
            "slot time of the sandbox child (Solana's is about 400 ms)"),
    Setting("SANDBOX_RPC_LATENCY_MS", "0", _int_range(0, 30_000),
            "latency the sandbox child adds to every JSON-RPC request"),
    Setting("SANDBOX_RPC_RPS_LIMIT", "0", _int_range(0, 1_000_000),
            "JSON-RPC calls/s per RPC path the sandbox child allows, then HTTP 429; 0: unlimited"),
    Setting("SANDBOX_SWIFT_LATENCY_MS", "0", _int_range(0, 30_000),
            "latency the sandbox child adds to every Swift request"),
    Setting("SANDBOX_FILL_PROFILE", "edge", _choice("edge", "v3"),
            "when the sandbox child's makers fill Swift auctions: edge (at once) or v3 (drawn)"),
    Setting("SERVER_KEYS", "", _text,
            "server key ring: id=file:/path or id=credential:name, comma-separated; empty: "
            "k1=credential:server-key under systemd, else k1=file:STATE_DIR/server.key"),
    Setting("SERVER_KEY_CURRENT", "", _text,
            "id of the server key that seals new secrets; empty: the only/first key"),
    Setting("SERVER_KEYS_RETIRED", "", _key_ids,
            "ids of SERVER_KEYS that are retired (distrusted): anything only under one is"
            " refused, never migrated; other non-current ids are previous (trusted)"),
    Setting("LEGACY_KEY_PATH", "on", _choice("on", "off"),
            "on: legacy wallets sign with their server-key envelope (migration); off: nothing is"
            " ever signed through a server-key-only envelope (V3 wallets sign through grants)"),
    Setting("WEBHOOK_MAX_BODY_BYTES", "65536", _int_range(256, 10 * 1024 * 1024),
            "largest accepted request body"),
    Setting("TRADINGVIEW_IP_ALLOWLIST", "false", _bool,
            "accept webhooks only from TradingView's published source addresses"),
    Setting("TRUSTED_PROXIES", "", _networks,
            "proxies whose X-Forwarded-For is believed (comma-separated addresses or networks)"),
    Setting("WEBHOOK_MAX_CONNECTIONS", "512", _int_range(1, 100_000),
            "HTTP connections served at once; more wait in the listen backlog"),
    Setting("WEBHOOK_READ_TIMEOUT_S", "10", _float_range(0.1, 3600),
            "longest wait for a request (its line, headers and body) or on an idle connection"),
    Setting("WEBHOOK_BOT_RATE_PER_S", "5", _float_range(0.01, 10_000),
            "authenticated alerts per second one bot accepts (sustained); more answer 429"),
    Setting("WEBHOOK_BOT_BURST", "20", _int_range(1, 100_000),
            "authenticated alerts one bot accepts in a burst"),
)


@dataclass(frozen=True)
class Settings:
    """Parsed settings, looked up by variable name: `settings["WEBHOOK_PORT"]`."""

    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def load_settings(env: Mapping[str, str]) -> Settings:
    """Parse every setting from `env`; the first invalid one raises ConfigError naming it."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(setting.name, setting.default)
        if setting.name == "STATE_DIR" and setting.name not in env and env.get("STATE_DIRECTORY"):
            raw = env["STATE_DIRECTORY"]
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            shown = "<hidden>" if setting.secret else repr(raw)
            raise ConfigError(f"invalid {setting.name}={shown}: {exc}") from None
    return Settings(values)


def describe() -> str:
    """The settings table as plain text, for `--help`."""
    width = max(len(s.name) for s in SETTINGS)
    lines = ["environment variables (default in brackets):"]
    for s in SETTINGS:
        default = s.default if s.default else "empty"
        lines.append(f"  {s.name.ljust(width)}  [{default}]  {s.help}")
    return "\n".join(lines)
