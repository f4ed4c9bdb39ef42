"""Venue commands of the CLI: prepare an authority for Swift (its SignedMsgUserOrders account)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from config import Settings
from security.errors import InvalidKeyMaterial
from security.keypair_file import read_keypair_file
from venue.process_venue import ProcessVenue
from venue.rpc_client import RpcError, RpcTransportError, SolanaRpc
from venue.signed_msg_user_orders import (
    DEFAULT_NUM_ORDERS,
    initialize_signed_msg_user_orders_tx,
    signed_msg_user_orders_exists,
)
from venue.tx_sender import send_and_confirm
from venue.tx_status import TxState

CONFIRM_TIMEOUT_S = 60.0


def cmd_init_orders(settings: Settings, args: argparse.Namespace) -> int:
    """Create the authority's SignedMsgUserOrders account unless it exists (idempotent)."""
    try:
        keypair = read_keypair_file(args.keypair)
    except InvalidKeyMaterial as exc:
        print(f"quantumvault: {exc}", file=sys.stderr)
        return 2
    venue = ProcessVenue(settings, os.environ, start_child=False)
    rpc = SolanaRpc(venue.profile.rpc_primary_url, label="primary")
    authority = keypair.pubkey()
    try:
        if signed_msg_user_orders_exists(rpc, venue.profile, authority):
            result = {"authority": str(authority), "created": False, "state": "exists"}
        else:
            blockhash, last_valid = rpc.get_latest_blockhash()
            built = initialize_signed_msg_user_orders_tx(venue.profile, keypair, blockhash,
                                                         args.num_orders)
            sent = send_and_confirm(rpc, built, last_valid, CONFIRM_TIMEOUT_S)
            result = {"authority": str(authority), "created": sent.verdict.state is TxState.LANDED,
                      "state": str(sent.verdict.state), "error": sent.verdict.error,
                      "signature": sent.signature}
    except (RpcError, RpcTransportError) as exc:
        print(f"quantumvault: RPC failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        rpc.close()
    print(json.dumps(result))
    return 0 if result["state"] in ("exists", "landed") else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add `swift init-orders` to the command line."""
    swift = sub.add_parser("swift", help="Swift preparation commands")
    commands = swift.add_subparsers(dest="swift_command", required=True)
    init = commands.add_parser(
        "init-orders", help="create the SignedMsgUserOrders account an authority needs")
    init.add_argument("--keypair", required=True, help="Solana keypair JSON file of the authority")
    init.add_argument("--num-orders", type=int, default=DEFAULT_NUM_ORDERS,
                      help="order slots (1..128; they also cap Swift orders in flight)")
    init.set_defaults(func=cmd_init_orders)
