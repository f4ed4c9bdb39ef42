"""TradingView alerts to signals: JSON templates and the default plain-text strategy message.

TradingView sends `application/json` when the alert message is valid JSON and `text/plain`
otherwise. The default strategy message is
`order {{strategy.order.action}} @ {{strategy.order.contracts}} filled on {{ticker}}. New
strategy position is {{strategy.position_size}}`; JSON templates name the same placeholders
with keys of the user's choosing, so common spellings are accepted for each field.

What the strategy did is derived from the new position and the order: the previous position is
`new - contracts` for a buy and `new + contracts` for a sell, unless the template sends
`prev_market_position` / `market_position` explicitly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_CONTRACTS = Decimal("1e12")
MIN_EXPONENT = -18  # a non-zero number smaller than 1e-18 is refused (no market trades it)
MAX_NUMBER_CHARS = 64  # a number written with more characters is refused before parsing
MAX_DEPTH = 16  # JSON objects nested deeper are refused


class AlertError(ValueError):
    """The alert cannot be turned into a signal; the message says which field and why."""


@dataclass(frozen=True)
class Signal:
    """What one alert asks for, independent of any bot's size."""

    action: str  # "buy" | "sell"
    contracts: Decimal  # the strategy's order size (its own units)
    new_position: Decimal | None  # signed strategy position after the order, if known
    prev_position: Decimal | None  # signed strategy position before the order, if known
    price: Decimal | None
    ticker: str | None
    order_id: str | None
    time: str | None

    @property
    def kind(self) -> str:
        """open | increase | reduce | close | flip, or "unknown" without position data."""
        new, prev = self.new_position, self.prev_position
        if new is None or prev is None:
            return "unknown"
        if new == 0:
            return "close"
        if prev == 0:
            return "open"
        if (new > 0) != (prev > 0):
            return "flip"
        return "increase" if abs(new) > abs(prev) else "reduce"

    @property
    def target_side(self) -> str:
        """The side the strategy holds afterwards: long | short | flat."""
        if self.new_position is None:
            return "long" if self.action == "buy" else "short"
        if self.new_position == 0:
            return "flat"
        return "long" if self.new_position > 0 else "short"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, stored with the signal row."""
        return {
            "action": self.action, "contracts": str(self.contracts),
            "new_position": _str(self.new_position), "prev_position": _str(self.prev_position),
            "price": _str(self.price), "ticker": self.ticker, "order_id": self.order_id,
            "time": self.time, "kind": self.kind, "target_side": self.target_side,
        }


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signal:
        """Rebuild a signal from its stored form (`as_dict`)."""

        def dec(key: str) -> Decimal | None:
            return None if data.get(key) is None else Decimal(str(data[key]))

        contracts = dec("contracts")
        return cls(str(data["action"]), contracts if contracts is not None else Decimal(0),
                   dec("new_position"), dec("prev_position"), dec("price"), data.get("ticker"),
                   data.get("order_id"), data.get("time"))


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


_PLAIN = re.compile(
    r"order\s+(?P<action>buy|sell)\s+@\s+(?P<contracts>[-+0-9.eE]+)\s+filled\s+on\s+"
    r"(?P<ticker>\S+?)\.?\s+new\s+strategy\s+position\s+is\s+(?P<position>[-+0-9.eE]+)",
    re.IGNORECASE,
)

_ALIASES: Mapping[str, tuple[str, ...]] = {
    "action": ("action", "strategy.order.action", "side", "order_action"),
    "contracts": ("contracts", "strategy.order.contracts", "size", "qty", "quantity", "amount"),
    "position": ("position_size", "strategy.position_size", "new_position", "position"),
    "market_position": ("market_position", "strategy.market_position"),
    "prev_market_position": ("prev_market_position", "strategy.prev_market_position"),
    "price": ("price", "close", "order_price", "strategy.order.price"),
    "ticker": ("ticker", "symbol", "syminfo.ticker"),
    "order_id": ("order_id", "strategy.order.id", "id"),
    "time": ("timenow", "time", "timestamp"),
}

_SIDES = {"long": 1, "short": -1, "flat": 0}


def parse_alert(body: bytes, content_type: str = "") -> Signal:
    """Parse a webhook body into a Signal, or raise AlertError naming what is wrong."""
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AlertError("body is not UTF-8 text") from None
    if not text:
        raise AlertError("empty alert")
    if "\x00" in text:
        raise AlertError("body contains a NUL byte")
    if text[0] in "{[" or "json" in content_type.lower():
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AlertError(f"body is not valid JSON: {exc.msg}") from None
        except ValueError:  # e.g. an integer of more than 4300 digits
            raise AlertError("body is not valid JSON: a number is too long") from None
        except RecursionError:
            raise AlertError(f"JSON alert nested deeper than {MAX_DEPTH} levels") from None
        if not isinstance(payload, dict):
            raise AlertError("JSON alert must be an object")
        return _from_fields(_flatten(payload))
    match = _PLAIN.search(text)
    if not match:
        raise AlertError("plain-text alert does not match TradingView's strategy message "
                         "('order buy @ 1 filled on SOLUSD. New strategy position is 1')")
    return _from_fields({"action": match["action"], "contracts": match["contracts"],
                         "ticker": match["ticker"], "position_size": match["position"]})


def _flatten(payload: Mapping[str, Any], prefix: str = "", depth: int = 1) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise AlertError(f"JSON alert nested deeper than {MAX_DEPTH} levels")
    flat: dict[str, Any] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}".lower()
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}.", depth + 1))
        else:
            flat[name] = value
    return flat


def _pick(fields: Mapping[str, Any], field: str) -> Any:
    for alias in _ALIASES[field]:
        value = fields.get(alias)
        if value not in (None, ""):
            return value
    return None


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise AlertError(f"{field} must be a number, got {value!r}")
    if isinstance(value, (dict, list)):
        raise AlertError(f"{field} must be a number, got a JSON {type(value).__name__}")
    text = str(value).strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise AlertError(f"{field} must be a number of at most {MAX_NUMBER_CHARS} characters")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise AlertError(f"{field} must be a number, got {text[:40]!r}") from None
    if not number.is_finite() or not math.isfinite(float(number)):
        raise AlertError(f"{field} must be finite")
    if number and number.adjusted() < MIN_EXPONENT:
        raise AlertError(f"{field} {text[:40]!r} is absurdly small")
    return number


def _text(value: Any, field: str, limit: int) -> str | None:
    """A free-text field as stored with the signal: at most `limit` characters of storable
    text (no NUL, no lone surrogate from a JSON escape)."""
    if value is None:
        return None
    text = str(value)[:limit]
    if "\x00" in text:
        raise AlertError(f"{field} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise AlertError(f"{field} is not valid Unicode text") from None
    return text


def _from_fields(fields: Mapping[str, Any]) -> Signal:
    raw_action = _pick(fields, "action")
    if raw_action is None:
        raise AlertError("missing action (buy or sell)")
    action = str(raw_action).strip().lower()
    if action in ("long", "short"):
        action = "buy" if action == "long" else "sell"
    if action not in ("buy", "sell"):
        raise AlertError(f"action must be buy or sell, got {str(raw_action)[:20]!r}")
    raw_contracts = _pick(fields, "contracts")
    if raw_contracts is None:
        raise AlertError("missing contracts (the order size)")
    contracts = abs(_decimal(raw_contracts, "contracts"))
    if contracts > MAX_CONTRACTS:
        raise AlertError(f"contracts {contracts} is absurdly large")
    new_position = _position(fields, contracts)
    prev_position = _prev_position(fields, action, contracts, new_position)
    if contracts == 0 and new_position != 0:
        raise AlertError("contracts must be positive")
    price = _pick(fields, "price")
    parsed_price = None if price is None else _decimal(price, "price")
    if parsed_price is not None and parsed_price <= 0:
        raise AlertError("price must be positive")
    return Signal(action, contracts, new_position, prev_position, parsed_price,
                  _text(_pick(fields, "ticker"), "ticker", 40),
                  _text(_pick(fields, "order_id"), "order_id", 80),
                  _text(_pick(fields, "time"), "time", 40))


def _side_sign(value: Any, field: str) -> int:
    sign = _SIDES.get(str(value).strip().lower())
    if sign is None:
        raise AlertError(f"{field} must be long, short or flat, got {str(value)[:20]!r}")
    return sign


def _position(fields: Mapping[str, Any], contracts: Decimal) -> Decimal | None:
    """The signed position after the order: position_size, signed by market_position if given."""
    size = _pick(fields, "position")
    side = _pick(fields, "market_position")
    sign = None if side is None else _side_sign(side, "market_position")
    if size is None:
        return None if sign is None else contracts * sign
    value = _decimal(size, "position_size")
    if abs(value) > MAX_CONTRACTS:
        raise AlertError("position_size is absurdly large")
    if sign == 0:
        return Decimal(0)
    return -abs(value) if sign == -1 else value


def _prev_position(fields: Mapping[str, Any], action: str, contracts: Decimal,
                   new_position: Decimal | None) -> Decimal | None:
    """The signed position before the order: derived from the order, checked against the
    template's prev_market_position when it sends one (which wins on disagreement)."""
    if new_position is None:
        return None
    derived = new_position - (contracts if action == "buy" else -contracts)
    prev_side = _pick(fields, "prev_market_position")
    if prev_side is None:
        return derived
    sign = _side_sign(prev_side, "prev_market_position")
    if sign == 0:
        return Decimal(0)
    return derived if derived != 0 and (derived > 0) == (sign > 0) else contracts * sign


def never_stale(parsed: Mapping[str, Any]) -> bool:
    """A stored signal (its `parsed` dict) that only reduces risk: a close, a reduction or a
    flatten. Such a signal runs however late (SIGNAL_STALE_S does not apply): it ends a risk."""
    return parsed.get("kind") in ("close", "reduce") or bool(parsed.get("flatten"))
