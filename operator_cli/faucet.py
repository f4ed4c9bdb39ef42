"""The sandbox faucet client: fund a new agent so it can trade on VENUE=sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests

FAUCET_TIMEOUT_S = 5.0


class FaucetError(Exception):
    """The sandbox could not be reached or refused the funding (message has no secret)."""


def fund_agent(base_url: str, authority: str, quote: Decimal,
               timeout_s: float = FAUCET_TIMEOUT_S) -> dict[str, Any]:
    """POST /sandbox/faucet {"authority", "quote"}; returns the sandbox's answer."""
    url = f"{base_url}/sandbox/faucet"
    body = {"authority": authority, "quote": float(quote) if quote % 1 else int(quote)}
    try:
        response = requests.post(url, json=body, timeout=timeout_s)
    except requests.RequestException as exc:
        raise FaucetError(f"sandbox not reachable at {base_url} ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise FaucetError(f"sandbox faucet at {base_url} answered HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    return answer if isinstance(answer, dict) else {}
