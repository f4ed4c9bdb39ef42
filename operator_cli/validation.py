"""Operator input checks: every refusal is a CliError naming the argument and what is allowed.

Decimal places match the columns (leverage NUMERIC(10,2), USD amounts NUMERIC(20,6), percent
NUMERIC(5,2)), so a value is stored exactly as given and its policy HMAC verifies as computed.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from driftpy.constants.perp_markets import mainnet_perp_market_configs
from solders.pubkey import Pubkey

from operator_cli.output import CliError

MAX_LEVERAGE = Decimal(100)
MAX_USD = Decimal(10) ** 12
MAX_NAME = 100
MAX_REASON = 500


def decimal_arg(text: str, name: str, *, places: int, low: Decimal, high: Decimal,
                low_inclusive: bool = False) -> Decimal:
    """A finite decimal within (low, high] (or [low, high]) with at most `places` decimals."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise CliError(f"{name} must be a number, got {text!r}") from None
    if not value.is_finite():
        raise CliError(f"{name} must be a finite number")
    too_low = value < low if low_inclusive else value <= low
    if too_low or value > high:
        bound = "at least" if low_inclusive else "greater than"
        raise CliError(f"{name} must be {bound} {low} and at most {high}, got {text}")
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise CliError(f"{name} takes at most {places} decimal places, got {text}")
    return value.quantize(Decimal(1).scaleb(-places))


def leverage_arg(text: str) -> Decimal:
    """Leverage: more than 0, at most MAX_LEVERAGE, two decimals."""
    return decimal_arg(text, "--leverage", places=2, low=Decimal(0), high=MAX_LEVERAGE)


def usd_arg(text: str, name: str) -> Decimal:
    """A positive USD amount up to MAX_USD with six decimals."""
    return decimal_arg(text, name, places=6, low=Decimal(0), high=MAX_USD)


def percent_arg(text: str) -> Decimal:
    """A profit share from 0 to 100 percent, two decimals."""
    return decimal_arg(text, "--profit-share-percent", places=2, low=Decimal(0),
                       high=Decimal(100), low_inclusive=True)


def market_arg(text: str) -> tuple[str, int]:
    """A Drift perp market symbol ("SOL-PERP" or "sol") to (symbol, market index)."""
    wanted = text.strip().upper()
    candidates = (wanted, f"{wanted}-PERP")
    for config in mainnet_perp_market_configs:
        if config.symbol.upper() in candidates:
            return config.symbol, int(config.market_index)
    raise CliError(f"unknown perp market {text!r} (e.g. SOL-PERP, BTC-PERP, ETH-PERP)")


def address_arg(text: str, name: str) -> str:
    """A canonical base58 Solana address."""
    try:
        key = Pubkey.from_string(text.strip())
    except (ValueError, TypeError):
        raise CliError(f"{name} is not a Solana address: {text!r}") from None
    if str(key) != text.strip():
        raise CliError(f"{name} is not a canonical base58 address: {text!r}")
    return str(key)


def text_arg(text: str | None, name: str, limit: int) -> str | None:
    """Optional free text, stripped, at most `limit` characters."""
    if text is None:
        return None
    text = text.strip()
    if len(text) > limit:
        raise CliError(f"{name} is longer than {limit} characters")
    return text or None
