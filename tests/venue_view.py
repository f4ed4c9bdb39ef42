"""What the sandbox saw, read the way every whole-daemon test counts it: orders per agent, and
positions. One place, so "an order" means the same thing in every test."""

from __future__ import annotations

from typing import Any

import requests


def counters(sandbox_url: str) -> dict[str, dict[str, int]]:
    """The sandbox's counters per authority (swift_orders_received, transactions_received, ...)."""
    return requests.get(f"{sandbox_url}/sandbox/stats", timeout=5).json()["by_authority"]


def orders_received(sandbox_url: str, agent: str, seen: dict[str, Any] | None = None) -> int:
    """Swift orders plus transactions the sandbox received from this agent, but for its
    withdrawals (a subscriber's profit-share payment is a withdrawal, not an order); `seen`:
    counters already read."""
    mine = (counters(sandbox_url) if seen is None else seen).get(agent, {})
    return (mine.get("swift_orders_received", 0) + mine.get("transactions_received", 0)
            - mine.get("withdrawals", 0))


def orders_executed(sandbox_url: str, agent: str, seen: dict[str, Any] | None = None) -> int:
    """Orders of this agent the venue executed: Swift orders filled and transactions landed,
    but for its withdrawals. A Swift order that expired unfilled and went on-chain counts once
    here (twice in orders_received)."""
    mine = (counters(sandbox_url) if seen is None else seen).get(agent, {})
    return (mine.get("swift_orders_filled", 0) + mine.get("transactions_landed", 0)
            - mine.get("withdrawals", 0))


def position(sandbox_url: str, agent: str, market_index: int = 0) -> int:
    """The agent's base position in a market at the sandbox, sub-account 0 (1e9; 0 if none)."""
    user = requests.get(f"{sandbox_url}/sandbox/user", params={"authority": agent},
                        timeout=5).json()
    return sum(int(p["base_asset_amount"]) for p in user.get("positions", [])
               if p["market_index"] == market_index)
