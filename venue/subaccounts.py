"""A bot's own Drift sub-account: find the id the program will accept, create it, fund it.

The program creates an authority's sub-accounts strictly in order: ``initialize_user`` accepts
only ``sub_account_id == UserStats.number_of_sub_accounts_created`` (protocol-v2
``handle_initialize_user``, ``InvalidUserSubAccountId`` otherwise), and that counter never goes
down, so an id whose User was deleted can never be created again. :func:`plan_sub_account`
therefore reads the venue before anything is sent:

- the wanted id exists: it is used as is (adopted) if it is flat (no position, no open order),
  else refused; a retry after a lost answer thus finds its own account and does not create a
  second one;
- the wanted id is below the counter and missing (created and deleted earlier): the next id the
  program will create is taken instead;
- the wanted id is at or above the counter: every missing id from the counter up to it is
  created, in order (ids below the wanted one belong to other bots whose accounts the venue lost,
  e.g. a restarted sandbox, or that were allocated without the venue); UserStats first if the
  authority has none.

:func:`provision` sends the creation and the funding, at most ``INITS_PER_TX`` creations per
transaction, the funding in the last one so that a funded account is always a created one.
Funding tops the account up to a target rather than adding an amount (a retry never funds
twice): sub-account 0 by ``deposit`` from the authority's quote token account, any other by
``transferDeposit`` from sub-account 0 (the wallet's main account, which ``wallet create``
funds). Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from driftpy.addresses import get_user_account_public_key, get_user_stats_account_public_key
from driftpy.constants.numeric_constants import SPOT_BALANCE_PRECISION
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from venue.drift_program import drift_program
from venue.legacy_tx import (
    build_tx,
    initialize_user_ix,
    initialize_user_stats_ix,
    token_ix,
    transfer_deposit_ix,
)
from venue.positions import UserSnapshot, read_user
from venue.profiles import VenueProfile
from venue.rpc_client import RpcError, RpcTransportError, SolanaRpc, error_label
from venue.tx_sender import send_and_confirm
from venue.tx_status import TxState

INITS_PER_TX = 6  # initialize_user instructions per transaction (well inside 1232 bytes)
FUNDING_SOURCE = 0  # sub-account the others are funded from (the wallet's main account)
CONFIRM_TIMEOUT_S = 60.0


class SubAccountError(Exception):
    """The sub-account cannot be used or provisioned; the message is for the operator."""


@dataclass(frozen=True)
class SubAccountPlan:
    """What the venue needs before ``sub_account_id`` can trade."""

    authority: Pubkey
    sub_account_id: int
    create: tuple[int, ...] = ()  # ids to initialise, in order (the last may be ours)
    user_stats_missing: bool = False
    quote_balance: int = 0  # the account's quote now (0 when it is to be created)
    source: UserSnapshot | None = field(default=None, repr=False)  # sub-account 0, when read

    @property
    def exists(self) -> bool:
        """True when the account is already on the venue (nothing to create for it)."""
        return self.sub_account_id not in self.create


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` did: ids created, quote moved in (1e6), signatures."""

    sub_account_id: int
    created: tuple[int, ...]
    funded: int
    method: str | None  # "deposit" | "transfer_deposit" | None (nothing to fund)
    quote_balance: int  # the account's quote afterwards
    signatures: tuple[str, ...]


def sub_accounts_created(rpc: SolanaRpc, profile: VenueProfile, authority: Pubkey) -> int | None:
    """UserStats.number_of_sub_accounts_created, or None when the authority has no UserStats."""
    _slot, account = rpc.get_account_info(
        get_user_stats_account_public_key(profile.program_id, authority))
    if account is None:
        return None
    if account.owner != profile.program_id:
        raise SubAccountError(f"the UserStats address of {authority} is not a program account")
    stats = drift_program(profile.program_id).coder.accounts.decode(account.data)
    return int(stats.number_of_sub_accounts_created)


def read_sub_account(rpc: SolanaRpc, profile: VenueProfile, authority: Pubkey,
                     sub_account_id: int) -> UserSnapshot | None:
    """The decoded User of one sub-account, or None when it does not exist."""
    _slot, account = rpc.get_account_info(
        get_user_account_public_key(profile.program_id, authority, sub_account_id))
    return read_user(account.data) if account is not None else None


def quote_balance(user: UserSnapshot | None, profile: VenueProfile) -> int:
    """Quote collateral of a sub-account in token units, at cumulative interest 1.0 (the
    sandbox's; on a real venue it slightly understates a balance that earned interest, so a
    top-up may move a little more than needed, never less); a borrow counts as 0."""
    if user is None:
        return 0
    spot = user.spot.get(profile.quote_spot_market_index)
    if spot is None or spot.is_borrow:
        return 0
    # a scaled balance is SPOT_BALANCE_PRECISION per token at cumulative interest 1.0
    return spot.scaled_balance * 10 ** profile.quote_decimals // SPOT_BALANCE_PRECISION


def is_flat(user: UserSnapshot) -> bool:
    """No perp position and no open order."""
    return not any(p.base_asset_amount or p.open_orders for p in user.perps.values()) and \
        not any(o.status == "Open" for o in user.orders.values())


def plan_sub_account(rpc: SolanaRpc, profile: VenueProfile, authority: Pubkey,
                     wanted: int) -> SubAccountPlan:
    """Read the venue and decide which id ``wanted`` becomes and what must be created."""
    created = sub_accounts_created(rpc, profile, authority)
    user = read_sub_account(rpc, profile, authority, wanted)
    source = read_sub_account(rpc, profile, authority, FUNDING_SOURCE)
    if user is not None:
        if not is_flat(user):
            raise SubAccountError(
                f"sub-account {wanted} of {authority} already exists on the venue with a "
                "position or open orders; it is not taken over by a new bot")
        return SubAccountPlan(authority, wanted, quote_balance=quote_balance(user, profile),
                              source=source)
    counter = created or 0
    target = wanted if wanted >= counter else counter
    return SubAccountPlan(authority, target, create=tuple(range(counter, target + 1)),
                          user_stats_missing=created is None, source=source)


def _fund_ix(profile: VenueProfile, plan: SubAccountPlan, amount: int,
             source_exists: bool) -> tuple[Instruction, str]:
    authority = plan.authority
    source = plan.source.raw if plan.source is not None else None
    if plan.sub_account_id == FUNDING_SOURCE:
        ata = get_associated_token_address(authority, profile.quote_mint)
        return token_ix("deposit", profile, authority, amount, ata, source, reduce_only=False,
                        sub_account_id=FUNDING_SOURCE), "deposit"
    if not source_exists:
        raise SubAccountError(f"sub-account {FUNDING_SOURCE} of {authority} does not exist on the "
                              "venue: nothing to fund the new sub-account from")
    users = [source] if source is not None else []
    return transfer_deposit_ix(profile, authority, amount, FUNDING_SOURCE, plan.sub_account_id,
                               users), "transfer_deposit"


def provision(rpc: SolanaRpc, profile: VenueProfile, keypair: Keypair, plan: SubAccountPlan,
              fund_to: int = 0, *, name: str | None = None,
              timeout_s: float = CONFIRM_TIMEOUT_S) -> Provisioned:
    """Create what ``plan`` lists and top the account's quote up to ``fund_to`` (1e6 units).

    Raises SubAccountError with the venue's reason when a transaction is refused, fails or
    stays unconfirmed (then what landed before it stays landed: run it again, it adopts).
    """
    authority = keypair.pubkey()
    if authority != plan.authority:
        raise ValueError("the keypair is not the plan's authority")
    ixs: list[Instruction] = []
    if plan.user_stats_missing:
        ixs.append(initialize_user_stats_ix(profile, authority))
    for sub_id in plan.create:
        ixs.append(initialize_user_ix(profile, authority, sub_id,
                                      name=name if sub_id == plan.sub_account_id else None))
    amount = max(0, fund_to - plan.quote_balance)
    method = None
    batches = [ixs[i:i + INITS_PER_TX] for i in range(0, len(ixs), INITS_PER_TX)] or [[]]
    if amount:
        source_exists = plan.source is not None or FUNDING_SOURCE in plan.create
        fund, method = _fund_ix(profile, plan, amount, source_exists)
        batches[-1].append(fund)
    signatures = [_send(rpc, profile, keypair, batch, timeout_s) for batch in batches if batch]
    return Provisioned(plan.sub_account_id, plan.create, amount, method,
                       plan.quote_balance + amount, tuple(signatures))


def _send(rpc: SolanaRpc, profile: VenueProfile, keypair: Keypair,
          ixs: Sequence[Instruction], timeout_s: float) -> str:
    try:
        blockhash, last_valid = rpc.get_latest_blockhash()
        built = build_tx(keypair, ixs, blockhash)
        sent = send_and_confirm(rpc, built, last_valid, timeout_s)
    except (RpcError, RpcTransportError) as exc:
        raise SubAccountError(f"the venue refused the sub-account transaction "
                              f"({error_label(exc)})") from None
    if sent.verdict.state is not TxState.LANDED:
        raise SubAccountError(f"the sub-account transaction {sent.signature} "
                              f"{sent.verdict.state}"
                              + (f": {sent.verdict.error}" if sent.verdict.error else ""))
    return sent.signature
