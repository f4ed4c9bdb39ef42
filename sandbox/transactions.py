"""Execute Solana transactions against the sandbox: verify, decode with driftpy's coder, apply.

Supported: Drift initializeUserStats, initializeUser (sub-account ids in the program's order:
the next id is UserStats.number_of_sub_accounts_created), initializeSignedMsgUserOrders, deposit,
withdraw, transferDeposit (quote between two sub-accounts of one authority),
placeAndTakePerpOrder; SPL Token Transfer/TransferChecked; Associated Token Account
Create/CreateIdempotent; System transfer; ComputeBudget (ignored). Anything else fails the way
a simulation would (unknown program, Anchor InstructionFallbackNotFound, or an instruction the
sandbox does not model). A transaction is atomic: a failing instruction rolls back the others.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Any

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from sandbox import codec, margin
from sandbox.accounts import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    SYSTEM_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    OrderState,
    SignedMsgOrdersState,
    TokenAccountState,
    UserState,
    associated_token_address,
    signed_msg_address,
    user_address,
    user_stats_address,
)
from sandbox.exchange import Exchange, TxRecord
from sandbox.makers import round_to_step
from sandbox.markets import QUOTE_SPOT_MARKET_INDEX

COMPUTE_BUDGET_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
LAMPORTS_PER_SIGNATURE = 5_000
MAX_TX_RECORDS = 200_000  # oldest half dropped beyond this (signature status cache)
ANCHOR_FALLBACK_NOT_FOUND = 101
ANCHOR_CONSTRAINT_HAS_ONE = 2001
ANCHOR_CONSTRAINT_RAW = 2003
ANCHOR_CONSTRAINT_SEEDS = 2006
ANCHOR_ACCOUNT_NOT_SIGNER = 3010
ANCHOR_ACCOUNT_NOT_INITIALIZED = 3012
SYSTEM_ACCOUNT_IN_USE = 0
TOKEN_INSUFFICIENT_FUNDS = 1
TOKEN_OWNER_MISMATCH = 4


class TxFailure(Exception):
    """A transaction error in RPC shape: ``err`` is the TransactionError JSON value."""

    def __init__(self, err: Any, message: str, logs: list[str] | None = None) -> None:
        super().__init__(message)
        self.err = err
        self.message = message
        self.logs = logs or []


class InstructionFailure(Exception):
    """One instruction failed; the executor wraps it into InstructionError [index, kind]."""

    def __init__(self, kind: Any, log: str = "") -> None:
        super().__init__(log or str(kind))
        self.kind = kind
        self.log = log


def _custom(code: int, log: str = "") -> InstructionFailure:
    return InstructionFailure({"Custom": code}, log)


def _drift(name: str) -> InstructionFailure:
    code = codec.error_codes()[name]
    return _custom(code, f"Program log: AnchorError occurred. Error Code: {name}. "
                         f"Error Number: {code}.")


def describe_instruction_error(index: int, kind: Any) -> str:
    """The RPC's human text for an InstructionError."""
    if isinstance(kind, dict) and "Custom" in kind:
        return f"Error processing Instruction {index}: custom program error: {kind['Custom']:#x}"
    text = {"InvalidInstructionData": "invalid instruction data",
            "UninitializedAccount": "instruction requires an initialized account",
            "MissingRequiredSignature": "missing required signature for instruction",
            "InvalidAccountData": "invalid account data for instruction"}.get(str(kind), kind)
    return f"Error processing Instruction {index}: {text}"


@dataclass
class Outcome:
    """What executing (or simulating) a transaction produced."""

    signature: str
    logs: list[str] = field(default_factory=list)
    units: int = 0
    err: Any = None
    message: str = ""


@dataclass
class _Ctx:
    """Per-instruction view: resolved account keys and signer flags."""

    keys: list[Pubkey]
    signers: list[bool]
    logs: list[str]
    counts: list[tuple[str, str]] = field(default_factory=list)  # applied only if it lands

    def count(self, name: str, authority: Pubkey) -> None:
        """Count a stat if (and only when) the transaction lands successfully."""
        self.counts.append((name, str(authority)))

    def signed(self, key: Pubkey) -> bool:
        return any(k == key and s for k, s in zip(self.keys, self.signers, strict=True))


class _Snapshot:
    """Copies of the state a transaction may touch, to restore on failure."""

    def __init__(self, ex: Exchange) -> None:
        self.users = {k: _clone_user(v) for k, v in ex.users.items()}
        self.user_stats = dict(ex.user_stats)
        self.signed_msg = {k: replace(v, entries=list(v.entries)) for k, v in ex.signed_msg.items()}
        self.tokens = {k: replace(v) for k, v in ex.tokens.items()}
        self.lamports = dict(ex.lamports)
        self.fill_len = len(ex.fill_log)

    def restore(self, ex: Exchange) -> None:
        ex.users = self.users
        ex.user_stats = self.user_stats
        ex.signed_msg = self.signed_msg
        ex.tokens = self.tokens
        ex.lamports = self.lamports
        del ex.fill_log[self.fill_len:]


def _clone_user(u: UserState) -> UserState:
    return replace(u, positions={k: replace(p) for k, p in u.positions.items()},
                   orders=[replace(o) for o in u.orders], _cache=u._cache)


def decode_transaction(raw: bytes) -> VersionedTransaction:
    """Parse wire bytes (legacy or v0); ValueError when they are not a transaction."""
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except Exception as exc:
        raise ValueError("failed to deserialize solana_transaction::versioned::"
                         f"VersionedTransaction: {exc}") from exc
    try:
        tx.sanitize()
    except Exception as exc:
        raise ValueError("invalid transaction: Transaction failed to sanitize accounts offsets "
                         "correctly") from exc
    return tx


def execute(ex: Exchange, tx: VersionedTransaction, *, commit: bool, verify: bool = True,
            check_blockhash: bool = True) -> Outcome:
    """Run ``tx``; with ``commit`` keep its effects (and record it), else roll back.

    Raises TxFailure for errors that stop a transaction before it could land (bad signature,
    unknown blockhash, already processed, fee payer without funds); instruction errors are
    returned in ``Outcome.err`` so the caller can decide (preflight error vs landed failure).
    """
    msg = tx.message
    sig = str(tx.signatures[0]) if tx.signatures else ""
    if verify and not all(tx.verify_with_results()):
        raise TxFailure("SignatureFailure", "Transaction signature verification failure")
    if getattr(msg, "address_table_lookups", None):
        raise TxFailure("UnsupportedVersion",
                        "address lookup tables are not supported by the sandbox")
    if check_blockhash and not ex.blockhash_valid(msg.recent_blockhash):
        raise TxFailure("BlockhashNotFound", "Blockhash not found")
    if commit and sig in ex.transactions:
        raise TxFailure("AlreadyProcessed", "This transaction has already been processed")
    keys = list(msg.account_keys)
    signers = [msg.is_signer(i) for i in range(len(keys))]
    payer = keys[0]
    fee = LAMPORTS_PER_SIGNATURE * max(1, len(tx.signatures))
    with ex.lock:
        if ex.lamports.get(payer, 0) < fee:
            raise TxFailure("AccountNotFound", "Attempt to debit an account but found no "
                                               "record of a prior credit.")
        snap = _Snapshot(ex)
        logs: list[str] = []
        out = Outcome(signature=sig, logs=logs)
        names: list[str] = []
        counts: list[tuple[str, str]] = []
        try:
            for index, ix in enumerate(msg.instructions):
                program = keys[ix.program_id_index]
                ctx = _Ctx([keys[a] for a in ix.accounts], [signers[a] for a in ix.accounts],
                           logs, counts)
                logs.append(f"Program {program} invoke [1]")
                if commit:
                    ex.stats.incr_ix(_ix_label(program, bytes(ix.data)), "received")
                try:
                    names.append(_dispatch(ex, program, bytes(ix.data), ctx))
                except InstructionFailure as failure:
                    if failure.log:
                        logs.append(failure.log)
                    logs.append(f"Program {program} failed: {failure.kind}")
                    out.err = {"InstructionError": [index, failure.kind]}
                    out.message = describe_instruction_error(index, failure.kind)
                    break
                logs.append(f"Program {program} success")
                out.units += 20_000 if program == codec.PROGRAM_ID else 150
        except Exception:  # TxFailure, or a sandbox bug: never leave half a transaction applied
            snap.restore(ex)
            raise
        if out.err is not None or not commit:
            snap.restore(ex)
        if commit:
            ex.lamports[payer] = ex.lamports.get(payer, 0) - fee
            ex.transactions[sig] = TxRecord(slot=ex.slot, err=out.err, logs=list(logs))
            auth = str(payer)
            ex.stats.incr("transactions_landed" if out.err is None else "transactions_failed",
                          auth)
            for name in names:
                ex.stats.incr_ix(name, "landed" if out.err is None else "rolled_back")
            if out.err is None:
                for stat, who in counts:
                    ex.stats.incr(stat, who)
            if len(ex.transactions) > MAX_TX_RECORDS:
                for old in list(ex.transactions)[: MAX_TX_RECORDS // 2]:
                    del ex.transactions[old]
        return out


def _ix_label(program: Pubkey, data: bytes) -> str:
    """A stats label for an instruction, decodable or not."""
    if program == codec.PROGRAM_ID:
        name = codec.coder().instruction.sighash_to_name.get(bytes(data[:8]))
        return name or "drift_unknown"
    return {COMPUTE_BUDGET_ID: "compute_budget", TOKEN_PROGRAM_ID: "spl_token",
            ASSOCIATED_TOKEN_PROGRAM_ID: "associated_token",
            SYSTEM_PROGRAM_ID: "system"}.get(program, f"program:{program}")


def _dispatch(ex: Exchange, program: Pubkey, data: bytes, ctx: _Ctx) -> str:
    if program == COMPUTE_BUDGET_ID:
        return "compute_budget"
    if program == codec.PROGRAM_ID:
        return _drift_ix(ex, data, ctx)
    if program == TOKEN_PROGRAM_ID:
        return _token_ix(ex, data, ctx)
    if program == ASSOCIATED_TOKEN_PROGRAM_ID:
        return _ata_ix(ex, data, ctx)
    if program == SYSTEM_PROGRAM_ID:
        return _system_ix(ex, data, ctx)
    raise TxFailure("ProgramAccountNotFound", "Attempt to load a program that does not exist")


# ----- Drift ---------------------------------------------------------------------------------

def _drift_ix(ex: Exchange, data: bytes, ctx: _Ctx) -> str:
    try:
        name, args = codec.decode_instruction(data)
    except ValueError as exc:
        raise _custom(ANCHOR_FALLBACK_NOT_FOUND,
                      "Program log: AnchorError occurred. Error Code: "
                      "InstructionFallbackNotFound. Error Number: 101.") from exc
    handler = _DRIFT_HANDLERS.get(name)
    if handler is None:
        raise InstructionFailure("InvalidInstructionData",
                                 f"Program log: sandbox does not model instruction {name}")
    ctx.logs.append(f"Program log: Instruction: {_camel(name)}")
    handler(ex, args, ctx)
    return name


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _need(ctx: _Ctx, n: int) -> None:
    if len(ctx.keys) < n:
        raise _custom(3005, "Program log: AnchorError: AccountNotEnoughKeys")


def _require_signer(ctx: _Ctx, key: Pubkey) -> None:
    if not ctx.signed(key):
        raise _custom(ANCHOR_ACCOUNT_NOT_SIGNER, "Program log: AnchorError: AccountNotSigner")


def _user_for(ex: Exchange, ctx: _Ctx, user_key: Pubkey, authority: Pubkey,
              allow_delegate: bool) -> UserState:
    user = ex.users.get(user_key)
    if user is None:
        raise _custom(ANCHOR_ACCOUNT_NOT_INITIALIZED,
                      "Program log: AnchorError: AccountNotInitialized (user)")
    ok = authority == user.authority or (allow_delegate and authority == user.delegate
                                         and user.delegate != Pubkey.default())
    if not ok:
        raise _custom(ANCHOR_CONSTRAINT_HAS_ONE, "Program log: AnchorError: ConstraintHasOne")
    _require_signer(ctx, authority)
    return user


def _ix_initialize_user_stats(ex: Exchange, args: Any, ctx: _Ctx) -> None:
    _need(ctx, 4)
    stats_key, authority = ctx.keys[0], ctx.keys[2]
    _require_signer(ctx, authority)
    if stats_key != user_stats_address(authority):
        raise _custom(ANCHOR_CONSTRAINT_SEEDS, "Program log: AnchorError: ConstraintSeeds")
    if authority in ex.user_stats:
        raise _custom(SYSTEM_ACCOUNT_IN_USE, f"Allocate: account Address {{ address: "
                                             f"{stats_key}, base: None }} already in use")
    ex.user_stats[authority] = 0


def _ix_initialize_user(ex: Exchange, args: Any, ctx: _Ctx) -> None:
    _need(ctx, 5)
    user_key, stats_key, authority = ctx.keys[0], ctx.keys[1], ctx.keys[3]
    _require_signer(ctx, authority)
    if user_key != user_address(authority, args.sub_account_id):
        raise _custom(ANCHOR_CONSTRAINT_SEEDS, "Program log: AnchorError: ConstraintSeeds")
    if authority not in ex.user_stats or stats_key != user_stats_address(authority):
        raise _custom(ANCHOR_ACCOUNT_NOT_INITIALIZED,
                      "Program log: AnchorError: AccountNotInitialized (user_stats)")
    if user_key in ex.users:
        raise _custom(SYSTEM_ACCOUNT_IN_USE, f"Allocate: account {user_key} already in use")
    count = ex.user_stats[authority]
    if args.sub_account_id != count:  # protocol-v2 handle_initialize_user
        ctx.logs.append(f"Program log: Invalid sub account id {args.sub_account_id}, "
                        f"must be {count}")
        raise _drift("InvalidUserSubAccountId")
    name = bytes(args.name).rstrip(b"\x00") or b"Main Account"
    ex.create_user(authority, args.sub_account_id, name=name)
    ex.user_stats[authority] = count + 1


def _ix_initialize_signed_msg_user_orders(ex: Exchange, args: Any, ctx: _Ctx) -> None:
    _need(ctx, 3)
    acc_key, authority, payer = ctx.keys[0], ctx.keys[1], ctx.keys[2]
    _require_signer(ctx, payer)
    if acc_key != signed_msg_address(authority):
        raise _custom(ANCHOR_CONSTRAINT_SEEDS, "Program log: AnchorError: ConstraintSeeds")
    if not 1 <= args.num_orders <= 128:
        raise _drift("InvalidSignedMsgUserOrdersResize")
    if authority in ex.signed_msg:
        raise _custom(SYSTEM_ACCOUNT_IN_USE, f"Allocate: account {acc_key} already in use")
    ex.signed_msg[authority] = SignedMsgOrdersState(authority, int(args.num_orders))


def _quote_token(ex: Exchange, args: Any, token_key: Pubkey) -> TokenAccountState:
    """The token account of a deposit or withdrawal, which must be of the quote spot market."""
    if args.market_index != QUOTE_SPOT_MARKET_INDEX:
        raise _drift("SpotMarketNotFound")
    tok = ex.tokens.get(token_key)
    if tok is None:
        raise InstructionFailure("UninitializedAccount")
    return tok


def _debit_quote(ex: Exchange, user: UserState, amount: int) -> None:
    """Take `amount` of the user's quote collateral out (a withdrawal, or the sending side of a
    transfer): refused beyond the balance (the sandbox models no borrows) or when the user
    would no longer meet its initial margin."""
    if amount > user.quote_balance:
        raise _drift("InsufficientCollateral")
    user.quote_balance -= amount
    if margin.free_collateral(user, ex.markets, ex.oracles.prices()) < 0:
        raise _drift("InsufficientCollateral")
    user.total_withdraws += amount


def _ix_deposit(ex: Exchange, args: Any, ctx: _Ctx) -> None:
    _need(ctx, 7)
    user_key, authority, token_key = ctx.keys[1], ctx.keys[3], ctx.keys[5]
    user = _user_for(ex, ctx, user_key, authority, allow_delegate=True)
    tok = _quote_token(ex, args, token_key)
    if tok.owner != authority:
        raise _custom(TOKEN_OWNER_MISMATCH, "Program log: Error: owner does not match")
    if tok.amount < args.amount:
        raise _custom(TOKEN_INSUFFICIENT_FUNDS, "Program log: Error: insufficient funds")
    tok.amount -= args.amount
    user.quote_balance += args.amount
    user.total_deposits += args.amount
    user.touch(ex.slot)
    ctx.count("deposits", user.authority)


def _ix_withdraw(ex: Exchange, args: Any, ctx: _Ctx) -> None:
    _need(ctx, 8)
    user_key, authority, token_key = ctx.keys[1], ctx.keys[3], ctx.keys[6]
    user = _user_for(ex, ctx, user_key, authority, allow_delegate=False)
    tok = _quote_token(ex, args, token_key)
    amount = int(args.amount)
    if args.reduce_only:
        amount = min(amount, max(0, user.quote_balance))
    _debit_quote(ex, user, amount)
    tok.amount += amount
    user.touch(ex.slot)
    ctx.count("withdrawals", user.authority)


def _ix_transfer_deposit(ex: Exchange, args: Any, ctx: _Ctx) -> None:
    """Move quote collateral between two sub-accounts of one authority (protocol-v2
    handle_transfer_deposit: both users signable by the authority, not the same account, the
    sender still meets its initial margin afterwards)."""
    _need(ctx, 6)
    from_key, to_key, stats_key, authority = ctx.keys[0], ctx.keys[1], ctx.keys[2], ctx.keys[3]
    from_user = _user_for(ex, ctx, from_key, authority, allow_delegate=True)
    to_user = _user_for(ex, ctx, to_key, authority, allow_delegate=True)
    if stats_key != user_stats_address(from_user.authority) or \
            to_user.authority != from_user.authority:
        raise _custom(ANCHOR_CONSTRAINT_RAW, "Program log: AnchorError: ConstraintRaw")
    if from_key == to_key:
        raise _drift("CantTransferBetweenSameUserAccount")
    if args.market_index != QUOTE_SPOT_MARKET_INDEX:
        raise _drift("SpotMarketNotFound")
    amount = int(args.amount)
    _debit_quote(ex, from_user, amount)
    to_user.quote_balance += amount
    to_user.total_deposits += amount
    from_user.touch(ex.slot)
    to_user.touch(ex.slot)
    ctx.count("transfers", from_user.authority)


def _ix_place_and_take_perp_order(ex: Exchange, args: Any, ctx: _Ctx) -> None:
    _need(ctx, 4)
    user_key, authority = ctx.keys[1], ctx.keys[3]
    user = _user_for(ex, ctx, user_key, authority, allow_delegate=True)
    p = args.params
    order_type = codec.variant(p.order_type)
    if codec.variant(p.market_type) != "Perp" or order_type not in ("Market", "Limit", "Oracle"):
        raise _drift("InvalidOrderMarketType")
    market = ex.markets.get(p.market_index)
    if market is None:
        raise _drift("PerpMarketNotFound")
    base = round_to_step(p.base_asset_amount, market.step_size)
    if base < market.min_order_size and not p.reduce_only:
        raise _drift("InvalidOrderSizeTooSmall")
    sign = 1 if codec.variant(p.direction) == "Long" else -1
    if not margin.has_collateral_for(user, market, sign, base, p.reduce_only, ex.markets,
                                     ex.oracles.prices()):
        raise _drift("InsufficientCollateral")
    oracle = ex.oracles.price(p.market_index)
    slip_centi_bps = round(ex.config.slippage_bps * 100)  # integer maths, no float drift
    price = oracle * (1_000_000 + sign * slip_centi_bps) // 1_000_000
    liq = ex.liquidity.get(p.market_index)
    if ex.faults.makers_paused or liq.mode == "none":
        size = 0
    elif liq.mode == "partial":
        size = round_to_step(int(base * liq.fraction), market.step_size)
    else:
        size = base
    if p.price and ((sign > 0 and price > p.price) or (sign < 0 and price < p.price)):
        size = 0
    if p.reduce_only:
        size = min(size, margin.reducible(user, p.market_index, sign))
    pos = user.positions.get(p.market_index)
    order = OrderState(
        order_id=ex.new_order_id(user), market_index=p.market_index,
        direction="long" if sign > 0 else "short", order_type=order_type,
        base_asset_amount=base, slot=ex.slot, price=p.price, reduce_only=p.reduce_only,
        existing_long=not (pos and pos.base_asset_amount < 0), posted_slot=ex.slot,
    )
    if size > 0:
        ex.fill(user, order, size, price, "place_and_take")
        ctx.logs.append(f"Program log: filled {size} at {price} (order {order.order_id})")
    condition = getattr(args, "success_condition", None)
    if (condition == 1 and order.base_filled == 0) or (condition == 2 and order.remaining > 0):
        raise _drift("PlaceAndTakeOrderSuccessConditionFailed")
    # The unfilled remainder is cancelled rather than left resting (sandbox simplification).
    user.touch(ex.slot)
    ctx.count("place_and_take_filled" if order.base_filled else "place_and_take_unfilled",
              user.authority)


_DRIFT_HANDLERS = {
    "initialize_user_stats": _ix_initialize_user_stats,
    "initialize_user": _ix_initialize_user,
    "initialize_signed_msg_user_orders": _ix_initialize_signed_msg_user_orders,
    "deposit": _ix_deposit,
    "withdraw": _ix_withdraw,
    "transfer_deposit": _ix_transfer_deposit,
    "place_and_take_perp_order": _ix_place_and_take_perp_order,
}


# ----- SPL token, associated token account, system -------------------------------------------

def _token_ix(ex: Exchange, data: bytes, ctx: _Ctx) -> str:
    if not data or data[0] not in (3, 12):
        raise InstructionFailure("InvalidInstructionData",
                                 "Program log: sandbox models only Transfer/TransferChecked")
    if data[0] == 3:
        _need(ctx, 3)
        source, dest, owner = ctx.keys[0], ctx.keys[1], ctx.keys[2]
        (amount,) = struct.unpack_from("<Q", data, 1)
        name = "spl_transfer"
    else:
        _need(ctx, 4)
        source, dest, owner = ctx.keys[0], ctx.keys[2], ctx.keys[3]
        (amount,) = struct.unpack_from("<Q", data, 1)
        name = "spl_transfer_checked"
    src, dst = ex.tokens.get(source), ex.tokens.get(dest)
    if src is None or dst is None:
        raise InstructionFailure("UninitializedAccount")
    if src.mint != dst.mint:
        raise _custom(3, "Program log: Error: Account not associated with this Mint")
    if src.owner != owner:
        raise _custom(TOKEN_OWNER_MISMATCH, "Program log: Error: owner does not match")
    if not ctx.signed(owner):
        raise InstructionFailure("MissingRequiredSignature")
    if src.amount < amount:
        raise _custom(TOKEN_INSUFFICIENT_FUNDS, "Program log: Error: insufficient funds")
    src.amount -= amount
    dst.amount += amount
    label = "Transfer" if data[0] == 3 else "TransferChecked"
    ctx.logs.append(f"Program log: Instruction: {label}")
    return name


def _ata_ix(ex: Exchange, data: bytes, ctx: _Ctx) -> str:
    _need(ctx, 4)
    ata, owner, mint = ctx.keys[1], ctx.keys[2], ctx.keys[3]
    if ata != associated_token_address(owner, mint):
        raise InstructionFailure("InvalidSeeds")
    idempotent = bool(data) and data[0] == 1
    if ata in ex.tokens:
        if not idempotent:
            raise _custom(SYSTEM_ACCOUNT_IN_USE, f"Allocate: account {ata} already in use")
        return "ata_create_idempotent"
    ex.token_account(owner, mint)
    return "ata_create"


def _system_ix(ex: Exchange, data: bytes, ctx: _Ctx) -> str:
    if len(data) >= 12 and struct.unpack_from("<I", data, 0)[0] == 2:
        _need(ctx, 2)
        (lamports,) = struct.unpack_from("<Q", data, 4)
        src, dst = ctx.keys[0], ctx.keys[1]
        if not ctx.signed(src):
            raise InstructionFailure("MissingRequiredSignature")
        if ex.lamports.get(src, 0) < lamports:
            raise _custom(1, "Transfer: insufficient lamports")
        ex.lamports[src] -= lamports
        ex.lamports[dst] = ex.lamports.get(dst, 0) + lamports
        return "system_transfer"
    raise InstructionFailure("InvalidInstructionData",
                             "Program log: sandbox models only system transfer")
