"""On-chain transactions: placeAndTakePerpOrder, deposit/withdraw, transfers between
sub-accounts, user init, SPL transfer.

Instruction data and account lists come from driftpy's IDL through anchorpy's instruction coder
(:mod:`venue.drift_program`) and PDAs from ``driftpy.addresses``, following the account maps of
driftpy's ``DriftClient.get_*_ix`` builders, but with no DriftClient and no connection: the
caller supplies the recent blockhash and, where margin matters, the decoded User account (for
remaining accounts). Every transaction starts with ComputeBudget limit/price instructions and is
signed here; the result carries the serialized bytes ready for ``sendTransaction``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from anchorpy.program.context import Context
from driftpy.addresses import (
    get_drift_client_signer_public_key,
    get_spot_market_vault_public_key,
    get_state_public_key,
    get_user_account_public_key,
    get_user_stats_account_public_key,
)
from driftpy.name import encode_name
from driftpy.types import UserAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import RENT
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    TransferCheckedParams,
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)

from venue.drift_program import drift_program
from venue.drift_types import to_order_params
from venue.profiles import VenueProfile
from venue.remaining_accounts import remaining_accounts
from venue.swift_order import MARKET_PERP, OrderSpec

DEFAULT_CU_LIMIT = 400_000
DEFAULT_CU_PRICE_MICROLAMPORTS = 10_000
DEFAULT_USER_NAME = "Main Account"


@dataclass(frozen=True)
class BuiltTx:
    """A signed v0 transaction, its wire bytes and its (first) signature in base58."""

    tx: VersionedTransaction
    raw: bytes
    signature: str
    blockhash: Hash


@dataclass(frozen=True)
class ComputeBudget:
    """Compute-unit limit and price (micro-lamports per CU) prepended to every transaction."""

    unit_limit: int = DEFAULT_CU_LIMIT
    unit_price_microlamports: int = DEFAULT_CU_PRICE_MICROLAMPORTS

    def instructions(self) -> list[Instruction]:
        """The two ComputeBudget instructions."""
        return [set_compute_unit_limit(self.unit_limit),
                set_compute_unit_price(self.unit_price_microlamports)]


DEFAULT_BUDGET = ComputeBudget()


def build_tx(payer: Keypair, instructions: Sequence[Instruction], blockhash: Hash,
             budget: ComputeBudget | None = DEFAULT_BUDGET,
             extra_signers: Sequence[Keypair] = ()) -> BuiltTx:
    """Compile a v0 message (no lookup tables), sign it and serialize it."""
    ixs = [*(budget.instructions() if budget is not None else []), *instructions]
    message = MessageV0.try_compile(payer.pubkey(), ixs, [], blockhash)
    tx = VersionedTransaction(message, [payer, *extra_signers])
    return BuiltTx(tx=tx, raw=bytes(tx), signature=str(tx.signatures[0]), blockhash=blockhash)


def _ix(profile: VenueProfile, name: str, *args: Any, accounts: dict[str, Any],
        remaining: Sequence[Any] = ()) -> Instruction:
    program = drift_program(profile.program_id)
    return program.instruction[name](
        *args, ctx=Context(accounts=accounts, remaining_accounts=list(remaining)))


def _spot_index(profile: VenueProfile, spot_market_index: int | None) -> int:
    """The spot market asked for, or the profile's quote market."""
    return profile.quote_spot_market_index if spot_market_index is None else spot_market_index


def place_and_take_perp_order_ix(
    profile: VenueProfile,
    authority: Pubkey,
    order: OrderSpec,
    user: UserAccount | None,
    *,
    sub_account_id: int = 0,
    signer: Pubkey | None = None,
    success_condition: int | None = None,
) -> Instruction:
    """placeAndTakePerpOrder for ``authority``'s sub-account; ``signer`` may be a delegate."""
    if order.market_type != MARKET_PERP:
        raise ValueError("placeAndTakePerpOrder needs a perp order")
    profile.market(order.market_index)  # unknown market -> ValueError before building
    pid = profile.program_id
    remaining = remaining_accounts(profile, [user] if user is not None else [],
                                   writable_perp=[order.market_index])
    return _ix(
        profile, "place_and_take_perp_order", to_order_params(order), success_condition,
        accounts={
            "state": get_state_public_key(pid),
            "user": get_user_account_public_key(pid, authority, sub_account_id),
            "user_stats": get_user_stats_account_public_key(pid, authority),
            "authority": signer or authority,
        },
        remaining=remaining,
    )


def place_and_take_perp_order_tx(
    profile: VenueProfile,
    signer: Keypair,
    order: OrderSpec,
    user: UserAccount | None,
    blockhash: Hash,
    *,
    authority: Pubkey | None = None,
    sub_account_id: int = 0,
    budget: ComputeBudget = DEFAULT_BUDGET,
) -> BuiltTx:
    """Signed placeAndTakePerpOrder transaction (signer = authority or its delegate)."""
    ix = place_and_take_perp_order_ix(profile, authority or signer.pubkey(), order, user,
                                      sub_account_id=sub_account_id, signer=signer.pubkey())
    return build_tx(signer, [ix], blockhash, budget)


def token_ix(name: Literal["deposit", "withdraw"], profile: VenueProfile, authority: Pubkey,
             amount: int, user_token_account: Pubkey, user: UserAccount | None, *,
             reduce_only: bool, spot_market_index: int | None = None,
             sub_account_id: int = 0) -> Instruction:
    """deposit into, or withdraw from, a sub-account through an SPL token account (default: the
    quote market). `reduce_only`: a deposit only repays a borrow, a withdraw never borrows.

    Both take the same arguments and accounts; withdraw also names the program signer that owns
    the vault (driftpy's get_deposit_ix / get_withdraw_ix account maps).
    """
    pid = profile.program_id
    index = _spot_index(profile, spot_market_index)
    accounts = {
        "state": get_state_public_key(pid),
        "user": get_user_account_public_key(pid, authority, sub_account_id),
        "user_stats": get_user_stats_account_public_key(pid, authority),
        "authority": authority,
        "spot_market_vault": get_spot_market_vault_public_key(pid, index),
        "user_token_account": user_token_account,
        "token_program": TOKEN_PROGRAM_ID,
    }
    if name == "withdraw":
        accounts["drift_signer"] = get_drift_client_signer_public_key(pid)
    remaining = remaining_accounts(profile, [user] if user is not None else [],
                                   writable_spot=[index])
    return _ix(profile, name, index, amount, reduce_only, accounts=accounts, remaining=remaining)


def transfer_deposit_ix(profile: VenueProfile, authority: Pubkey, amount: int,
                        from_sub_account_id: int, to_sub_account_id: int,
                        users: Sequence[UserAccount] = (), *,
                        spot_market_index: int | None = None) -> Instruction:
    """transferDeposit: move ``amount`` of a spot balance (default quote) between two
    sub-accounts of ``authority`` (driftpy's get_transfer_deposit_ix account map; ``users`` are
    the decoded accounts that exist, for remaining accounts; the sender must keep its margin)."""
    pid = profile.program_id
    index = _spot_index(profile, spot_market_index)
    return _ix(
        profile, "transfer_deposit", index, amount,
        accounts={
            "from_user": get_user_account_public_key(pid, authority, from_sub_account_id),
            "to_user": get_user_account_public_key(pid, authority, to_sub_account_id),
            "user_stats": get_user_stats_account_public_key(pid, authority),
            "authority": authority,
            "state": get_state_public_key(pid),
            "spot_market_vault": get_spot_market_vault_public_key(pid, index),
        },
        remaining=remaining_accounts(profile, list(users), writable_spot=[index]),
    )


def withdraw_tx(profile: VenueProfile, authority: Keypair, amount: int, user: UserAccount | None,
                blockhash: Hash, *, destination_owner: Pubkey | None = None,
                sub_account_id: int = 0, create_ata: bool = True,
                budget: ComputeBudget = DEFAULT_BUDGET) -> BuiltTx:
    """Withdraw quote from a sub-account to the quote ATA of ``destination_owner`` (or self)."""
    owner = destination_owner or authority.pubkey()
    ata = get_associated_token_address(owner, profile.quote_mint)
    ixs: list[Instruction] = []
    if create_ata:
        ixs.append(create_idempotent_associated_token_account(authority.pubkey(), owner,
                                                              profile.quote_mint))
    ixs.append(token_ix("withdraw", profile, authority.pubkey(), amount, ata, user,
                        reduce_only=True, sub_account_id=sub_account_id))
    return build_tx(authority, ixs, blockhash, budget)


def spl_transfer_tx(owner: Keypair, mint: Pubkey, decimals: int, amount: int,
                    recipient: Pubkey, blockhash: Hash, *, create_recipient_ata: bool = True,
                    budget: ComputeBudget = DEFAULT_BUDGET) -> BuiltTx:
    """transferChecked ``amount`` of ``mint`` from owner's ATA to recipient's ATA."""
    source = get_associated_token_address(owner.pubkey(), mint)
    dest = get_associated_token_address(recipient, mint)
    ixs: list[Instruction] = []
    if create_recipient_ata:
        ixs.append(create_idempotent_associated_token_account(owner.pubkey(), recipient, mint))
    ixs.append(transfer_checked(TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=mint, dest=dest, owner=owner.pubkey(),
        amount=amount, decimals=decimals, signers=[])))
    return build_tx(owner, ixs, blockhash, budget)


def profit_share_tx(profile: VenueProfile, authority: Keypair, amount: int,
                    user: UserAccount | None, recipient: Pubkey, blockhash: Hash, *,
                    sub_account_id: int = 0, budget: ComputeBudget = DEFAULT_BUDGET) -> BuiltTx:
    """Withdraw ``amount`` of quote from a sub-account and pay it to ``recipient``, atomically.

    One transaction (own ATA create-idempotent, withdraw reduce-only, recipient ATA
    create-idempotent, transferChecked): either the recipient is paid or nothing moves, so a
    failure never leaves funds stranded in the agent wallet between two transactions.
    """
    mint = profile.quote_mint
    me = authority.pubkey()
    own_ata = get_associated_token_address(me, mint)
    ixs = [
        create_idempotent_associated_token_account(me, me, mint),
        token_ix("withdraw", profile, me, amount, own_ata, user, reduce_only=True,
                 sub_account_id=sub_account_id),
        create_idempotent_associated_token_account(me, recipient, mint),
        transfer_checked(TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID, source=own_ata, mint=mint,
            dest=get_associated_token_address(recipient, mint), owner=me, amount=amount,
            decimals=profile.quote_decimals, signers=[])),
    ]
    return build_tx(authority, ixs, blockhash, budget)


def _initialize_accounts(profile: VenueProfile, authority: Pubkey,
                         payer: Pubkey | None) -> dict[str, Pubkey]:
    """The accounts both initialize instructions name (the payer funds the new account)."""
    pid = profile.program_id
    return {
        "user_stats": get_user_stats_account_public_key(pid, authority),
        "state": get_state_public_key(pid),
        "authority": authority,
        "payer": payer or authority,
        "rent": RENT,
        "system_program": SYSTEM_PROGRAM_ID,
    }


def initialize_user_stats_ix(profile: VenueProfile, authority: Pubkey,
                             payer: Pubkey | None = None) -> Instruction:
    """initializeUserStats (once per authority, before its first sub-account)."""
    return _ix(profile, "initialize_user_stats",
               accounts=_initialize_accounts(profile, authority, payer))


def initialize_user_ix(profile: VenueProfile, authority: Pubkey, sub_account_id: int = 0,
                       name: str | None = None, payer: Pubkey | None = None) -> Instruction:
    """initializeUser for a sub-account, name padded to 32 bytes like driftpy's encode_name."""
    if name is None:
        name = DEFAULT_USER_NAME if sub_account_id == 0 else f"Subaccount {sub_account_id + 1}"
    user = get_user_account_public_key(profile.program_id, authority, sub_account_id)
    return _ix(profile, "initialize_user", sub_account_id, encode_name(name),
               accounts={"user": user, **_initialize_accounts(profile, authority, payer)})
