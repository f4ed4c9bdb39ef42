"""Alert parsing: TradingView's default message and JSON templates, and clear refusals."""

from decimal import Decimal

import pytest

from trading.alerts import AlertError, parse_alert

DEFAULT = "order {a} @ {c} filled on SOLUSD. New strategy position is {p}"


@pytest.mark.parametrize(("action", "contracts", "position", "kind", "side", "prev"), [
    ("buy", "1", "1", "open", "long", "0"),
    ("buy", "1", "3", "increase", "long", "2"),
    ("sell", "1", "2", "reduce", "long", "3"),
    ("sell", "2", "0", "close", "flat", "2"),
    ("sell", "3", "-1", "flip", "short", "2"),
    ("buy", "0.5", "-1.5", "reduce", "short", "-2"),
    ("buy", "2.5", "0.5", "flip", "long", "-2"),
])
def test_default_plain_text_message(action: str, contracts: str, position: str, kind: str,
                                    side: str, prev: str) -> None:
    body = DEFAULT.format(a=action, c=contracts, p=position).encode()
    signal = parse_alert(body, "text/plain")
    assert (signal.action, signal.contracts, signal.new_position) == (
        action, Decimal(contracts), Decimal(position))
    assert signal.prev_position == Decimal(prev)
    assert (signal.kind, signal.target_side) == (kind, side)
    assert signal.ticker == "SOLUSD"


def test_json_template_with_tradingview_placeholders() -> None:
    body = (b'{"action": "sell", "contracts": "2", "position_size": "-2", '
            b'"market_position": "short", "prev_market_position": "flat", "ticker": "SOLUSDT",'
            b' "close": "150.25", "timenow": "2026-11-21T10:00:00Z", "order_id": "Short"}')
    signal = parse_alert(body, "application/json")
    assert signal.kind == "open" and signal.target_side == "short"
    assert signal.price == Decimal("150.25")
    assert signal.time == "2026-11-21T10:00:00Z" and signal.order_id == "Short"


def test_nested_json_and_market_position_alone() -> None:
    signal = parse_alert(b'{"strategy": {"order": {"action": "BUY", "contracts": 1}, '
                         b'"market_position": "flat", "prev_market_position": "short"}}')
    assert signal.action == "buy" and signal.kind == "close" and signal.prev_position == -1


def test_unsigned_position_is_signed_by_market_position() -> None:
    signal = parse_alert(b'{"side": "short", "qty": 1, "position_size": 1, '
                         b'"market_position": "short"}')
    assert signal.new_position == -1 and signal.action == "sell"


def test_without_position_data_the_kind_is_unknown() -> None:
    signal = parse_alert(b'{"action": "buy", "contracts": 1}')
    assert signal.kind == "unknown" and signal.target_side == "long"


@pytest.mark.parametrize(("body", "reason"), [
    (b"", "empty"),
    (b"\xff\xfe", "UTF-8"),
    (b"{not json", "valid JSON"),
    (b"[1, 2]", "object"),
    (b'{"contracts": 1}', "missing action"),
    (b'{"action": "hold", "contracts": 1}', "buy or sell"),
    (b'{"action": "buy"}', "missing contracts"),
    (b'{"action": "buy", "contracts": "lots"}', "number"),
    (b'{"action": "buy", "contracts": "NaN"}', "finite"),
    (b'{"action": "buy", "contracts": 1e15}', "absurdly large"),
    (b'{"action": "buy", "contracts": true}', "number"),
    (b'{"action": "buy", "contracts": 1, "market_position": "sideways"}', "long, short or flat"),
    (b'{"action": "buy", "contracts": 1, "price": -3}', "positive"),
    (b"hello there", "strategy message"),
])
def test_malformed_alerts_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(AlertError, match=reason):
        parse_alert(body)
