"""Venue profiles: tables come from driftpy, env overrides apply, secrets never show."""

from __future__ import annotations

import pytest
from driftpy.constants.config import DRIFT_PROGRAM_ID
from driftpy.constants.perp_markets import devnet_perp_market_configs, mainnet_perp_market_configs

from venue.profiles import PROFILES, load_profile, with_market_sizes

KEY = "hk-0123456789abcdef"
TRITON = "https://example-triton.rpcpool.com/tritonsecrettoken0123456789"


def test_default_is_sandbox_and_needs_an_address() -> None:
    with pytest.raises(ValueError, match="SANDBOX_URL"):
        load_profile({})
    p = load_profile({"SANDBOX_URL": "http://127.0.0.1:8910/"})
    assert p.name == "sandbox" and p.program_id == DRIFT_PROGRAM_ID
    assert p.swift_base_url == p.rpc_primary_url == "http://127.0.0.1:8910"
    assert load_profile({}, sandbox_url="http://127.0.0.1:1").rpc_primary_url.endswith(":1")


def test_sandbox_ignores_real_rpc_keys() -> None:
    p = load_profile({"SANDBOX_URL": "http://127.0.0.1:8910", "HELIUS_API_KEY": KEY,
                      "TRITON_ONE_RPC": TRITON})
    assert "helius" not in p.rpc_primary_url and p.rpc_backup_url is None


@pytest.mark.parametrize(("name", "configs"), [("drift-mainnet", mainnet_perp_market_configs),
                                               ("drift-devnet", devnet_perp_market_configs)])
def test_market_tables_are_driftpys(name, configs) -> None:
    p = PROFILES[name]
    assert len(p.markets) == len(configs)
    for c in configs:
        m = p.market(c.market_index)
        assert (m.symbol, m.oracle, m.oracle_source) == (
            c.symbol, c.oracle, type(c.oracle_source).__name__)
        assert m.min_order_size is None and m.step_size is None  # driftpy has no sizes
    assert len(PROFILES["drift-mainnet"].markets) == 85


def test_helius_triton_and_explicit_overrides() -> None:
    p = load_profile({"VENUE": "drift-mainnet", "HELIUS_API_KEY": KEY, "TRITON_ONE_RPC": TRITON})
    assert p.rpc_primary_url == f"https://mainnet.helius-rpc.com/?api-key={KEY}"
    assert p.rpc_backup_url == TRITON
    assert p.swift_base_url == "https://swift.drift.trade"
    p = load_profile({"VENUE": "drift-mainnet", "HELIUS_API_KEY": KEY,
                      "RPC_PRIMARY_URL": "https://rpc.example/", "RPC_BACKUP_URL": "http://b.example",
                      "SWIFT_API_URL": "http://127.0.0.1:9/"})
    assert (p.rpc_primary_url, p.rpc_backup_url, p.swift_base_url) == (
        "https://rpc.example", "http://b.example", "http://127.0.0.1:9")
    assert load_profile({"VENUE": "drift-devnet", "HELIUS_API_KEY": KEY}).rpc_primary_url \
        .startswith("https://devnet.helius-rpc.com/")


def test_repr_and_describe_redact_secrets() -> None:
    p = load_profile({"VENUE": "drift-mainnet", "HELIUS_API_KEY": KEY, "TRITON_ONE_RPC": TRITON})
    for text in (repr(p), str(p), str(p.describe())):
        assert KEY not in text and "tritonsecrettoken" not in text
        assert "mainnet.helius-rpc.com" in text


def test_invalid_values_name_the_variable_not_the_value() -> None:
    with pytest.raises(ValueError, match="VENUE"):
        load_profile({"VENUE": "binance"})
    with pytest.raises(ValueError, match="RPC_PRIMARY_URL") as info:
        load_profile({"VENUE": "drift-mainnet", "RPC_PRIMARY_URL": "ftp://x?api-key=leak123"})
    assert "leak123" not in str(info.value)


def test_velocity_is_marked_provisional() -> None:
    p = load_profile({"VENUE": "velocity"})
    assert {"program_id", "swift_base_url", "quote_mint", "markets"} <= p.provisional
    assert p.program_id != DRIFT_PROGRAM_ID
    assert p.describe()["provisional"]


def test_market_sizes_are_configuration() -> None:
    p = with_market_sizes(PROFILES["drift-mainnet"], {0: (10_000_000, 1_000_000)})
    sol = p.market_by_symbol("sol-perp")
    assert sol.index == 0 and sol.min_order_size == 10_000_000
    assert sol.round_to_step(12_345_678) == 12_000_000
    assert sol.below_minimum(9_999_999, reduce_only=False)
    assert not sol.below_minimum(9_999_999, reduce_only=True)
    assert PROFILES["drift-mainnet"].market(0).min_order_size is None  # original untouched
    with pytest.raises(ValueError):
        with_market_sizes(p, {0: (0, 1)})
    with pytest.raises(ValueError):
        p.market(500)


def test_the_drift_profiles_say_their_program_is_paused() -> None:
    for name in ("drift-mainnet", "drift-devnet"):
        pause = PROFILES[name].paused_program
        assert pause is not None and pause.since == "2026-04-01"
        assert pause.warning(name).startswith(f"venue {name}: its program is paused since")
        assert PROFILES[name].describe()["paused_program"]["since"] == "2026-04-01"
        assert load_profile({"VENUE": name}).paused_program == pause  # overrides keep it
    for name in ("velocity", "sandbox"):
        assert PROFILES[name].paused_program is None
        assert PROFILES[name].describe()["paused_program"] is None
