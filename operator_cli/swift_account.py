"""An agent's SignedMsgUserOrders account on a real venue, and the SOL its accounts cost in rent.

Without that account the Swift API accepts an authority's orders and they are never placed, so
`wallet create` prepares it: on the sandbox the faucet creates it with the User; on a real venue
this module reads whether it exists, what the agent holds in SOL and what the accounts cost, and
sends `initialize_signed_msg_user_orders` when the agent can pay for it. Rent: the account
itself, and each Drift sub-account (a User) plus the UserStats the first one needs, are
rent-exempt accounts paid in SOL by the authority; the figures are asked of the RPC node
(getMinimumBalanceForRentExemption), else computed with Solana's rent formula.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from solders.keypair import Keypair

from config import Settings
from venue.process_venue import ProcessVenue
from venue.rpc_client import RpcError, RpcTransportError, SolanaRpc
from venue.signed_msg_user_orders import (
    DEFAULT_NUM_ORDERS,
    initialize_signed_msg_user_orders_tx,
    signed_msg_user_orders_exists,
    signed_msg_user_orders_size,
)
from venue.tx_sender import send_and_confirm
from venue.tx_status import TxState

LAMPORTS_PER_SOL = 1_000_000_000
USER_ACCOUNT_SIZE = 4376  # protocol-v2 User::SIZE: one Drift sub-account
USER_STATS_SIZE = 240  # protocol-v2 UserStats::SIZE: one per authority
ACCOUNT_STORAGE_OVERHEAD = 128  # bytes Solana's rent adds to every account
RENT_LAMPORTS_PER_BYTE = 6960  # 3480 lamports per byte-year, exempt at 2 years
FEE_RESERVE_LAMPORTS = 100_000  # transaction fees (and priority fees) on top of the rent
CONFIRM_TIMEOUT_S = 60.0


class VenueUnreachable(Exception):
    """The venue's RPC could not be read; the message names no URL."""


@dataclass(frozen=True)
class RentNeeds:
    """Lamports the agent needs: its SignedMsgUserOrders, each sub-account, its UserStats."""

    signed_msg_user_orders: int
    per_sub_account: int
    user_stats: int
    fee_reserve: int = FEE_RESERVE_LAMPORTS

    def total(self, sub_accounts: int = 1) -> int:
        """SOL (lamports) for the account, `sub_accounts` Users, UserStats and fees."""
        return (self.signed_msg_user_orders + sub_accounts * self.per_sub_account
                + self.user_stats + self.fee_reserve)

    def describe(self, sub_accounts: int = 1) -> dict[str, Any]:
        """JSON form, lamports and SOL."""
        return {**asdict(self), "sub_accounts": sub_accounts,
                "total_lamports": self.total(sub_accounts),
                "total_sol": sol(self.total(sub_accounts))}


def sol(lamports: int) -> str:
    """Lamports as SOL text ("0.0361")."""
    text = f"{lamports / LAMPORTS_PER_SOL:.9f}".rstrip("0")
    return text.rstrip(".") if text.endswith(".") else text


def rent_exempt(rpc: SolanaRpc | None, size: int) -> int:
    """Lamports that make an account of `size` bytes rent-exempt (asked of the node when it
    answers the method; the sandbox does not)."""
    if rpc is not None:
        try:
            return int(rpc.call("getMinimumBalanceForRentExemption", [size]))
        except (RpcError, RpcTransportError, TypeError, ValueError):
            pass
    return (ACCOUNT_STORAGE_OVERHEAD + size) * RENT_LAMPORTS_PER_BYTE


def rent_needs(rpc: SolanaRpc | None, num_orders: int = DEFAULT_NUM_ORDERS) -> RentNeeds:
    """What the agent's accounts cost in rent."""
    return RentNeeds(rent_exempt(rpc, signed_msg_user_orders_size(num_orders)),
                     rent_exempt(rpc, USER_ACCOUNT_SIZE), rent_exempt(rpc, USER_STATS_SIZE))


def prepare_signed_msg_orders(rpc: SolanaRpc, profile: Any, keypair: Keypair,
                              num_orders: int = DEFAULT_NUM_ORDERS) -> dict[str, Any]:
    """Create the agent's SignedMsgUserOrders account unless it exists or the agent cannot pay.

    Returns {"state": "exists" | "created" | "needs_sol" | "failed" | "expired" | "pending",
    ...} with the
    balance, the rent and, for a transaction, its signature. Raises VenueUnreachable.
    """
    authority = keypair.pubkey()
    try:
        needs = rent_needs(rpc, num_orders)
        report: dict[str, Any] = {"authority": str(authority), "rent": needs.describe()}
        if signed_msg_user_orders_exists(rpc, profile, authority):
            return {**report, "state": "exists"}
        balance = int(rpc.call("getBalance", [str(authority)])["value"])
        report["balance_lamports"] = balance
        report["balance_sol"] = sol(balance)
        wanted = needs.signed_msg_user_orders + needs.fee_reserve
        if balance < wanted:
            return {**report, "state": "needs_sol", "missing_lamports": wanted - balance,
                    "missing_sol": sol(wanted - balance)}
        blockhash, last_valid = rpc.get_latest_blockhash()
        built = initialize_signed_msg_user_orders_tx(profile, keypair, blockhash, num_orders)
        sent = send_and_confirm(rpc, built, last_valid, CONFIRM_TIMEOUT_S)
    except (RpcError, RpcTransportError) as exc:
        raise VenueUnreachable(f"the venue's RPC failed ({type(exc).__name__})") from None
    state = "created" if sent.verdict.state is TxState.LANDED else str(sent.verdict.state)
    return {**report, "state": state, "signature": sent.signature, "error": sent.verdict.error}


def venue_rpc(settings: Settings) -> tuple[Any, SolanaRpc]:
    """The venue profile of this process and a client of its primary RPC (close it after)."""
    venue = ProcessVenue(settings, os.environ, start_child=False)
    return venue.profile, SolanaRpc(venue.profile.rpc_primary_url, label="primary")
