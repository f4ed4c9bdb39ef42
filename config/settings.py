"""The table of environment variables: name, default, parser and meaning, in one place.

`quantumvault --help` prints this table, the README mirrors it, and an invalid value stops
start-up with one line naming the variable. Secrets (API keys, tokens) are never echoed back.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")


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


def _optional(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    def parse_optional(raw: str) -> T | None:
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
    """One environment variable: a row of the table (`SETTINGS`, `--help`, the README)."""

    name: str  # the variable, e.g. WEBHOOK_PORT; its Settings attribute is `attr`
    default: str  # as the environment spells it; empty shows as "empty"
    parse: Callable[[str], Any]
    help: str
    secret: bool = False

    @property
    def attr(self) -> str:
        """The Settings attribute holding the parsed value: the name in lower case."""
        return self.name.lower()


_SPEC = "setting"


def _setting(default: str, parse: Callable[[str], T], meaning: str, *,
             secret: bool = False) -> T:
    """A field of `Settings`: its variable's default, parser and meaning (the variable is the
    field's name in upper case). Typed as the parser's result, so mypy checks the parser
    against the field's annotation; the value itself comes from `load_settings`."""
    spec: Any = field(kw_only=True, metadata={_SPEC: (default, parse, meaning, secret)})
    return spec


@dataclass(frozen=True)
class Settings:
    """Every setting, parsed and typed: `settings.webhook_port` is WEBHOOK_PORT.

    The fields are the table: each carries its variable's default, parser and meaning, and
    `SETTINGS` (what `--help` and the README show) is derived from them. Build it with
    `load_settings(env)` (tests: `dataclasses.replace(load_settings({}), ...)`)."""

    database_url: str = _setting(
        "", _text, "PostgreSQL URL; empty starts an embedded server under STATE_DIR", secret=True)
    state_dir: Path = _setting(  # noqa: RUF009 - a field spec (dataclasses.field), not a value
        ".state", _path,
        "where the embedded database and the admin token live (systemd: $STATE_DIRECTORY)")
    webhook_host: str = _setting("127.0.0.1", _text, "address of the webhook/API server")
    webhook_port: int = _setting("8080", _int_range(0, 65535), "port of the webhook/API server")
    metrics_port: int = _setting(
        "9464", _int_range(0, 65535), "port of the Prometheus /metrics server")
    admin_token: str = _setting(
        "", _admin_token,
        "bearer token for admin endpoints (at least 32 characters); empty: generated into"
        " STATE_DIR/admin_token", secret=True)
    admin_host: str = _setting(
        "127.0.0.1", _text,
        "address of the admin/ops listener (admin API, crash drills, health); keep it"
        " private")
    admin_port: int = _setting(
        "8081", _int_range(0, 65535),
        "port of the admin/ops listener (`quantumvault status` and `crash` use it)")
    crash_drills_enabled: bool = _setting(
        "false", _bool,
        "allow POST /api/admin/crash/{actor} (`quantumvault crash`); off in production")
    log_level: str = _setting(
        "INFO", _choice("debug", "info", "warning", "error"),
        "log level of the JSON log lines on stderr")
    db_pool_size: int = _setting("20", _int_range(1, 500), "database connections per process")
    db_statement_timeout_ms: int = _setting(
        "10000", _int_range(100, 600_000), "PostgreSQL statement_timeout for every query")
    supervisor_max_restarts: int = _setting(
        "10", _int_range(0, 10_000),
        "restarts allowed per supervisor within SUPERVISOR_PERIOD_S before it gives up")
    supervisor_period_s: float = _setting(
        "60", _float_range(0.1, 86_400), "window of the restart intensity")
    supervisor_backoff_base_ms: int = _setting(
        "100", _int_range(0, 60_000),
        "first restart delay; doubles per consecutive restart, with jitter")
    supervisor_backoff_cap_ms: int = _setting(
        "30000", _int_range(0, 600_000), "longest restart delay")
    health_interval_ms: int = _setting(
        "5000", _int_range(100, 600_000),
        "period of the health monitor's probes and of the systemd watchdog ping")
    swift_enabled: bool = _setting(
        "true", _bool,
        "global Swift switch (false: every order legacy); live: `quantumvault flags set`")
    swift_fallback_enabled: bool = _setting(
        "true", _bool, "a failed Swift order may go on-chain (if its bot allows it too); live")
    swift_retry_with_swift: bool = _setting(
        "true", _bool,
        "retryable Swift refusals (429, 503, slot too old) and retry jobs try Swift again"
        " (false: retries go on-chain); live")
    swift_api_url: str = _setting("", _text, "override of the venue profile's Swift base URL")
    swift_order_timeout_ms: int = _setting(
        "3000", _int_range(100, 60_000), "timeout of one Swift order submission")
    swift_health_check_interval_ms: int = _setting(
        "30000", _int_range(1000, 3_600_000), "period of the Swift /health probe")
    swift_max_retries_before_fallback: int = _setting(
        "2", _int_range(0, 100),
        "Swift retries of a trade (re-signed, with backoff) before it goes legacy")
    swift_rollout_percent: int = _setting(
        "100", _int_range(0, 100),
        "share of bots (stable per bot) whose orders try Swift first; live")
    swift_critical_orders_legacy: bool = _setting(
        "false", _bool, "send critical orders (closes) on-chain, never through Swift; live")
    swift_rate_per_s: float = _setting(
        "100", _float_range(0.1, 10_000),
        "Swift submissions per second the gateway allows (sustained; the Swift server has"
        " no rate limiter of its own, an edge in front of it may)")
    swift_rate_burst: int = _setting(
        "600", _int_range(1, 100_000),
        "Swift submissions in a burst (sized for a 500-subscriber fan-out)")
    swift_max_in_flight: int = _setting(
        "256", _int_range(1, 10_000),
        "Swift POSTs on the wire at once (a kept connection each); more wait their turn in"
        " line")
    swift_failures_unhealthy: int = _setting(
        "3", _int_range(1, 100), "consecutive Swift service failures that mark Swift unhealthy")
    auction_duration_slots: int | None = _setting(
        "", _optional(_int_range(1, 255)),
        "Dutch auction length of Swift market orders; empty: the venue profile's (10)")
    auction_start_bps: int = _setting(
        "-10", _int_range(-1000, 1000),
        "auction start offset from the oracle, in the taker's favour (bps)")
    auction_end_bps: int = _setting(
        "10", _int_range(-1000, 1000),
        "auction end offset from the oracle, against the taker (bps)")
    legacy_slippage_bps: int = _setting(
        "50", _int_range(1, 5000), "price limit of on-chain market orders around the oracle (bps)")
    legacy_max_in_flight: int = _setting(
        "16", _int_range(1, 1000),
        "on-chain sendTransaction calls on the wire at once; more wait their turn"
        " (confirmation holds none: one batched status read a slot follows every open"
        " transaction)")
    execution_budget_ms: int = _setting(
        "45000", _int_range(1000, 600_000),
        "total time for one order: the Swift attempt (through its auction) plus fallback")
    profit_share_interval_s: float = _setting(
        "300", _float_range(0.1, 86_400),
        "period of the profit-share IOU job, and the delay between IOU attempts")
    profit_share_max_attempts: int = _setting(
        "50", _int_range(1, 10_000), "payment attempts before an IOU is void")
    profit_share_ttl_s: float = _setting(
        "604800", _float_range(1, 31_536_000), "age at which an unpaid IOU is void (7 days)")
    retry_tick_ms: int = _setting(
        "1000", _int_range(50, 60_000), "how often the retry scheduler claims due jobs")
    retry_lease_s: float = _setting(
        "120", _float_range(1, 3600),
        "claim lease of a retry job; must outlast a Swift auction and a blockhash (~60 s)")
    drain_timeout_s: float = _setting(
        "30", _float_range(0, 600),
        "on SIGTERM, how long orders in flight may take to reach an outcome before the tree"
        " stops (alerts meanwhile are still accepted; they run after the restart); keep it"
        " under systemd's TimeoutStopSec")
    bot_lease_ttl_s: float = _setting(
        "15", _float_range(3, 3600),
        "life of a worker's lease on its bots (renewed every third of it): how long the bots"
        " of a worker that died wait before another worker takes them over")
    workers: int = _setting(
        "auto", _workers,
        "worker processes `run` starts beside its intake process (auto: one per core; 0:"
        " the intake process executes the bots itself)")
    signal_stale_s: float = _setting(
        "300", _float_range(1, 86_400),
        "a signal a crash interrupted before any order left runs again after the restart"
        " unless older than this (reduce-only signals never go stale)")
    journal_max_bytes: int = _setting(
        "16777216", _int_range(65_536, 2**40),
        "largest size of the local alert journal (STATE_DIR/journal) kept while the database"
        " is unreachable; an alert that does not fit answers 503")
    journal_max_age_s: float = _setting(
        "3600", _float_range(1, 7 * 86_400),
        "longest database outage the journal covers: once its oldest alert is older, new"
        " alerts answer 503")
    swift_supported_markets: tuple[str, ...] = _setting(
        "", _markets,
        "optional Swift market allowlist (comma-separated); empty: every perp market; live")
    venue: str = _setting(
        "sandbox", _choice("sandbox", "drift-mainnet", "drift-devnet", "velocity"), "venue profile")
    rpc_primary_url: str = _setting("", _text, "override of the profile's primary RPC", secret=True)
    rpc_backup_url: str = _setting("", _text, "override of the profile's backup RPC", secret=True)
    helius_api_key: str = _setting(
        "", _text,
        "primary RPC via Helius: its API key (real venues"
        " only; `RPC_PRIMARY_URL` overrides it)", secret=True)
    triton_one_rpc: str = _setting(
        "", _text,
        "backup RPC via Triton One: its full URL (real venues"
        " only; `RPC_BACKUP_URL` overrides it)", secret=True)
    sandbox_url: str = _setting(
        "", _text, "an already running sandbox; empty with VENUE=sandbox starts one as a child")
    sandbox_port: int = _setting(
        "8900", _int_range(0, 65535), "port of the sandbox child started by `run` (127.0.0.1)")
    sandbox_seed: int = _setting("1", _int_range(0, 2**31 - 1), "seed of the sandbox child")
    sandbox_slot_ms: int = _setting(
        "400", _int_range(10, 10_000), "slot time of the sandbox child (Solana's is about 400 ms)")
    sandbox_rpc_latency_ms: int = _setting(
        "0", _int_range(0, 30_000), "latency the sandbox child adds to every JSON-RPC request")
    sandbox_rpc_rps_limit: int = _setting(
        "0", _int_range(0, 1_000_000),
        "JSON-RPC calls/s per RPC path the sandbox child allows, then HTTP 429; 0: unlimited")
    sandbox_swift_latency_ms: int = _setting(
        "0", _int_range(0, 30_000), "latency the sandbox child adds to every Swift request")
    sandbox_fill_profile: str = _setting(
        "edge", _choice("edge", "v3"),
        "when the sandbox child's makers fill Swift auctions: edge (at once) or v3 (drawn)")
    server_keys: str = _setting(
        "", _text,
        "server key ring: id=file:/path or id=credential:name, comma-separated; empty: "
        "k1=credential:server-key under systemd, else k1=file:STATE_DIR/server.key")
    server_key_current: str = _setting(
        "", _text, "id of the server key that seals new secrets; empty: the only/first key")
    server_keys_retired: tuple[str, ...] = _setting(
        "", _key_ids,
        "ids of SERVER_KEYS that are retired (distrusted): anything only under one is"
        " refused, never migrated; other non-current ids are previous (trusted)")
    legacy_key_path: str = _setting(
        "on", _choice("on", "off"),
        "on: legacy wallets sign with their server-key envelope (migration); off: nothing is"
        " ever signed through a server-key-only envelope (V3 wallets sign through grants)")
    webhook_max_body_bytes: int = _setting(
        "65536", _int_range(256, 10 * 1024 * 1024), "largest accepted request body")
    tradingview_ip_allowlist: bool = _setting(
        "false", _bool, "accept webhooks only from TradingView's published source addresses")
    trusted_proxies: tuple[str, ...] = _setting(
        "", _networks,
        "proxies whose X-Forwarded-For is believed (comma-separated addresses or networks)")
    webhook_max_connections: int = _setting(
        "512", _int_range(1, 100_000),
        "HTTP connections served at once; more wait in the listen backlog")
    webhook_read_timeout_s: float = _setting(
        "10", _float_range(0.1, 3600),
        "longest wait for a request (its line, headers and body) or on an idle connection")
    webhook_bot_rate_per_s: float = _setting(
        "5", _float_range(0.01, 10_000),
        "authenticated alerts per second one bot accepts (sustained); more answer 429")
    webhook_bot_burst: int = _setting(
        "20", _int_range(1, 100_000), "authenticated alerts one bot accepts in a burst")

    @property
    def values(self) -> Mapping[str, Any]:
        """Every parsed value keyed by its variable's name, for code that takes the whole set
        by name (`SwiftFlags.from_values`, the live flags)."""
        return MappingProxyType({s.name: getattr(self, s.attr) for s in SETTINGS})


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name.upper(), *f.metadata[_SPEC]) for f in fields(Settings))


def load_settings(env: Mapping[str, str]) -> Settings:
    """Parse every setting from `env`; the first invalid one raises ConfigError naming it."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(setting.name, setting.default)
        if setting.name == "STATE_DIR" and setting.name not in env and env.get("STATE_DIRECTORY"):
            raw = env["STATE_DIRECTORY"]
        try:
            values[setting.attr] = setting.parse(raw)
        except ValueError as exc:
            shown = "<hidden>" if setting.secret else repr(raw)
            raise ConfigError(f"invalid {setting.name}={shown}: {exc}") from None
    return Settings(**values)


def describe() -> str:
    """The settings table as plain text, for `--help`."""
    width = max(len(s.name) for s in SETTINGS)
    lines = ["environment variables (default in brackets):"]
    for s in SETTINGS:
        default = s.default if s.default else "empty"
        lines.append(f"  {s.name.ljust(width)}  [{default}]  {s.help}")
    return "\n".join(lines)
