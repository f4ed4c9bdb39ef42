"""Alert parsing: TradingView's default message and JSON templates, and clear refusals."""

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"action": "buy", "contracts": 1}\x00', "NUL byte"),
    (b"order buy @ 1 filled on SOL\x00USD. New strategy position is 1", "NUL byte"),
    (b'{"action": "buy", "contracts": 1, "ticker": "SOL\\u0000"}', "ticker contains a NUL"),
    (b'{"action": "buy", "contracts": 1, "order_id": "\\ud800"}', "order_id is not valid"),
    (b"[" * 100_000, "nested deeper"),
    (b'{"a":' * 20 + b"1" + b"}" * 20, "nested deeper than 16"),
    (b'{"action": "buy", "contracts": ' + b"1" * 5000 + b"}", "number is too long"),
    (b'{"action": "buy", "contracts": "' + b"1" * 65 + b'"}', "at most 64 characters"),
    (b'{"action": "buy", "contracts": 1e999}', "finite"),
    (b'{"action": "buy", "contracts": -Infinity}', "finite"),
    (b'{"action": "buy", "contracts": "1E+999999999"}', "finite"),
    (b'{"action": "buy", "contracts": "1e99999999999999999999"}', "number"),
    (b'{"action": "buy", "contracts": 1e-30}', "absurdly small"),
    (b'{"action": "buy", "contracts": 1, "price": 1e-19}', "absurdly small"),
    (b'{"action": "buy", "contracts": 1, "position_size": 1e13}', "absurdly large"),
    (b'{"action": "buy", "contracts": [1]}', "JSON list"),
])
def test_hostile_alerts_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(AlertError, match=reason):
        parse_alert(body, "application/json")


def test_small_but_sane_numbers_still_parse() -> None:
    signal = parse_alert(b'{"action": "buy", "contracts": 0.000001, "price": 1e-8}')
    assert signal.contracts == Decimal("0.000001") and signal.price == Decimal("1e-8")


_json_atoms = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["buy", "sell", "long", "flat", "1e999", "NaN"]))
_keys = st.one_of(st.sampled_from(["action", "contracts", "position_size", "market_position",
                                   "prev_market_position", "price", "ticker", "order_id",
                                   "timenow", "strategy"]), st.text(max_size=8))
_json_docs = st.recursive(_json_atoms, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=6)), max_leaves=20)


@settings(max_examples=300, deadline=None, database=None)
@given(body=st.one_of(
    st.binary(max_size=300),
    _json_docs.map(lambda doc: json.dumps(doc, allow_nan=True).encode()),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
))
def test_any_body_parses_to_storable_text_or_an_alert_error(body: bytes) -> None:
    """Nothing but AlertError escapes, and what is accepted a database can store."""
    try:
        signal = parse_alert(body, "application/json")
    except AlertError as exc:
        assert "\x00" not in str(exc)
        str(exc).encode("utf-8")
        return
    stored = json.dumps(signal.as_dict())
    assert "\\u0000" not in stored
    stored.encode("utf-8")
    assert signal.action in ("buy", "sell") and signal.contracts.is_finite()
