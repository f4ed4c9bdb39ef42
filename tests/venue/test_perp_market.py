"""PerpMarket reads: the sandbox's anchor-encoded accounts decode to their size rules and price."""

import pytest
from driftpy.constants.config import DRIFT_PROGRAM_ID

from sandbox.accounts import encode_perp_market, encode_user_stats
from sandbox.markets import default_markets
from venue.perp_market import read_perp_market


def test_market_rules_and_oracle_price_round_trip() -> None:
    spec = next(m for m in default_markets().values() if m.symbol == "SOL-PERP")
    state = read_perp_market(DRIFT_PROGRAM_ID, encode_perp_market(spec, 151_250_000, 1234))
    assert (state.market_index, state.min_order_size, state.step_size) == (
        spec.market_index, spec.min_order_size, spec.step_size)
    assert state.oracle_price == 151_250_000 and state.oracle == spec.oracle
    assert state.margin_ratio_initial == 10_000 // spec.max_leverage


def test_other_accounts_are_refused() -> None:
    spec = default_markets()[0]
    with pytest.raises(ValueError, match="PerpMarket"):
        read_perp_market(DRIFT_PROGRAM_ID, encode_user_stats(spec.oracle, 1, 0))
    with pytest.raises(ValueError, match="PerpMarket"):
        read_perp_market(DRIFT_PROGRAM_ID, b"\x00" * 40)
