"""Emergency stop decisions: pure functions over the stop flags and one order intent.

Rules:
- A stop (global or per wallet) refuses every new order of any kind: opens, increases,
  signal closes, manual trades, subscriber copies and retries of any of them.
- "Stop and flatten" additionally lets through exactly the reduce-only closes that the flatten
  procedure itself issues. Those are recognised by a FlattenTicket carrying the stop's
  `stop_id` (the id of the stop record that ordered the flatten, e.g. its database row id).
  An order is a flatten order only if its origin is FLATTEN, it is reduce-only, and its ticket
  names a flatten stop that is active now. A signal path never holds a ticket, and a ticket of a
  cleared (or replaced) stop no longer matches, so neither a forged "close" signal nor a late
  retry of an old flatten can slip through.
- A plain stop beats a flatten stop: if either level holds a plain stop, nothing leaves, not even
  flatten orders. A plain stop is the operator's "no signature leaves this process" switch
  (e.g. a suspected key compromise), which must not be weakened by the other level.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StopMode(enum.Enum):
    """What a stop flag currently says."""

    NONE = "none"
    STOP = "stop"
    STOP_AND_FLATTEN = "stop_and_flatten"


@dataclass(frozen=True)
class StopState:
    """One stop flag (global or one wallet's) as stored."""

    mode: StopMode = StopMode.NONE
    stop_id: str | None = None

    def __post_init__(self) -> None:
        """A flatten stop needs an id so its flatten orders can be recognised."""
        if self.mode is StopMode.STOP_AND_FLATTEN and not self.stop_id:
            raise ValueError("a stop-and-flatten state needs a stop_id")


NO_STOP = StopState()


class OrderOrigin(enum.Enum):
    """Which path produced the order; FLATTEN only from the flatten procedure."""

    WEBHOOK = "webhook"
    MANUAL = "manual"
    SUBSCRIBER = "subscriber"
    RETRY = "retry"
    FLATTEN = "flatten"


class OrderKind(enum.Enum):
    """Open or increase a position, or close/reduce one."""

    OPEN = "open"
    CLOSE = "close"


@dataclass(frozen=True)
class FlattenTicket:
    """Issued by the flatten procedure for one stop; ties its orders to that stop."""

    stop_id: str
    scope: str  # "global" or "wallet"


@dataclass(frozen=True)
class OrderIntent:
    """The facts about a would-be order the stop decision needs."""

    origin: OrderOrigin
    kind: OrderKind
    reduce_only: bool
    flatten_ticket: FlattenTicket | None = None


@dataclass(frozen=True)
class StopDecision:
    """Allowed, or refused with a fixed reason label (for the trade record and metrics)."""

    allowed: bool
    reason: str | None = None


ALLOWED = StopDecision(True)


def flatten_ticket(state: StopState, scope: str) -> FlattenTicket:
    """The ticket the flatten procedure attaches to each reduce-only close it issues."""
    if state.mode is not StopMode.STOP_AND_FLATTEN or state.stop_id is None:
        raise ValueError("flatten tickets exist only for an active stop-and-flatten")
    if scope not in ("global", "wallet"):
        raise ValueError('scope must be "global" or "wallet"')
    return FlattenTicket(stop_id=state.stop_id, scope=scope)


def _is_flatten_order(intent: OrderIntent) -> bool:
    """Origin, kind and reduce-only all say flatten, and a ticket is attached."""
    return (
        intent.origin is OrderOrigin.FLATTEN
        and intent.kind is OrderKind.CLOSE
        and intent.reduce_only
        and intent.flatten_ticket is not None
    )


def decide(global_stop: StopState, wallet_stop: StopState, intent: OrderIntent) -> StopDecision:
    """May this order leave, given the global and the wallet's stop flags?"""
    if intent.origin is OrderOrigin.FLATTEN and not _is_flatten_order(intent):
        return StopDecision(False, "flatten_order_not_reduce_only_close")
    levels = (("global", global_stop), ("wallet", wallet_stop))
    for scope, state in levels:
        if state.mode is StopMode.STOP:
            return StopDecision(False, f"{scope}_emergency_stop")
    active = [(scope, state) for scope, state in levels if state.mode is not StopMode.NONE]
    if not active:
        if intent.origin is OrderOrigin.FLATTEN:
            return StopDecision(False, "flatten_without_active_stop")
        return ALLOWED
    if not _is_flatten_order(intent):
        return StopDecision(False, f"{active[0][0]}_emergency_stop")
    ticket = intent.flatten_ticket
    for scope, state in active:
        if ticket is not None and scope == ticket.scope and state.stop_id == ticket.stop_id:
            return ALLOWED
    return StopDecision(False, "flatten_ticket_stale")
