"""Offline access to driftpy's IDL and anchor coder, without DriftClient or a connection.

driftpy's ``DriftClient`` wants a live RPC connection and an event loop; we only need its IDL
(instruction/account/type coders), so we build an anchorpy ``Program`` around the bundled
``idl/drift.json`` with a provider that never connects. One Program per program id is cached:
building one costs ~0.1 s.
"""

from __future__ import annotations

import functools
from pathlib import Path

import driftpy
from anchorpy import Idl, Program, Provider, Wallet
from solders.pubkey import Pubkey


@functools.cache
def drift_idl() -> Idl:
    """Parse driftpy's bundled Drift IDL once."""
    path = Path(next(iter(driftpy.__path__))) / "idl" / "drift.json"
    return Idl.from_json(path.read_text())


@functools.cache
def drift_program(program_id: Pubkey) -> Program:
    """Return an anchorpy Program for ``program_id`` whose provider has no connection."""
    provider = Provider(None, Wallet.dummy())  # type: ignore[arg-type]
    return Program(drift_idl(), program_id, provider)


@functools.cache
def _error_names() -> dict[int, str]:
    errors = drift_idl().errors or []
    return {e.code: e.name for e in errors}


def program_error_name(code: int) -> str | None:
    """Drift program error name for a custom error code (e.g. 6003 -> InsufficientCollateral)."""
    return _error_names().get(code)
