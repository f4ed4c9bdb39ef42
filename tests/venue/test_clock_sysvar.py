"""venue.clock_sysvar decodes the Clock sysvar the sandbox serves over real JSON-RPC, exactly as
solders' own Clock does."""

from __future__ import annotations

import struct

import pytest
from solders.clock import Clock
from solders.sysvar import CLOCK

from sandbox.server import SandboxServer
from venue.clock_sysvar import CLOCK_SYSVAR, ChainClock, read_clock
from venue.rpc_client import SolanaRpc


def test_read_clock_matches_solders_on_the_bytes_the_sandbox_serves() -> None:
    assert CLOCK_SYSVAR == CLOCK
    with SandboxServer("127.0.0.1", 0, slot_ms=0, genesis_ts=1_800_000_000.0) as server:
        rpc = SolanaRpc(server.rpc_url, label="primary", timeout_s=5)
        for steps in (0, 1, 1000):
            server.step(steps)
            slot, account = rpc.get_account_info(CLOCK_SYSVAR)
            assert account is not None
            assert str(account.owner) == "Sysvar1111111111111111111111111111111111111"
            clock = read_clock(account.data)
            reference = Clock.from_bytes(account.data)
            assert clock == ChainClock(slot=reference.slot,
                                       unix_timestamp=reference.unix_timestamp)
            assert clock.slot == slot == server.exchange.slot
            assert clock.unix_timestamp == server.exchange.clock.unix_ts()
        _, (account,) = rpc.get_multiple_accounts([CLOCK_SYSVAR])
        assert account is not None and read_clock(account.data).slot == server.exchange.slot
        assert read_clock(account.data).unix_timestamp == 1_800_000_000 + 1001 * 2 // 5
        rpc.close()


def test_read_clock_by_hand_and_bad_sizes() -> None:
    data = struct.pack("<QqQQq", 7, -3, 1, 2, -1)
    assert read_clock(data) == ChainClock(slot=7, unix_timestamp=-1)
    with pytest.raises(ValueError):
        read_clock(data[:39])
    with pytest.raises(AttributeError):
        read_clock(data).slot = 8  # type: ignore[misc]
