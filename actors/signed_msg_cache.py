"""Which authorities have a SignedMsgUserOrders account: without it Swift orders never place.

The venue accepts a Swift order of an authority without that account and never places it, so
bots route such an authority on-chain. The SwiftGateway answers from this per-authority cache:
an account that exists is remembered for good, a missing one is looked at again after
SIGNED_MSG_RECHECK_S, a failed read is not remembered (and holds no order back from Swift).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka
from solders.pubkey import Pubkey

from supervision import Outcome
from venue.profiles import VenueProfile
from venue.signed_msg_user_orders import signed_msg_user_orders_address

log = logging.getLogger(__name__)

SIGNED_MSG_FRESH_S = 30.0  # whether the account exists: a read this recent (a fan-out's) will do
SIGNED_MSG_RECHECK_S = 60.0  # an authority found without SignedMsgUserOrders is read again after


class SignedMsgCache:
    """The answers known per authority, and the askers waiting for the one read in flight."""

    def __init__(self, profile: VenueProfile) -> None:
        self._profile = profile
        self._known: set[Pubkey] = set()
        self._missing: dict[Pubkey, float] = {}  # authority -> when found missing
        self._waiting: dict[Pubkey, list[pykka.Future[Any]]] = {}

    def cached(self, authority: Pubkey) -> bool | None:
        """The remembered answer, or None when the account is to be read."""
        if authority in self._known:
            return True
        missing_at = self._missing.get(authority)
        if missing_at is not None and time.monotonic() - missing_at < SIGNED_MSG_RECHECK_S:
            return False
        return None

    def wait(self, authority: Pubkey, future: pykka.Future[Any]) -> bool:
        """Have `future` answered by the authority's next read; True when that read is yet to
        be started (one read per authority, however many ask meanwhile)."""
        waiting = self._waiting.setdefault(authority, [])
        waiting.append(future)
        return len(waiting) == 1

    def address(self, authority: Pubkey) -> Pubkey:
        """The authority's SignedMsgUserOrders account."""
        return signed_msg_user_orders_address(self._profile, authority)

    def read(self, authority: Pubkey, outcome: Outcome) -> None:
        """The read of the authority's account came back: remember it, answer its askers."""
        if outcome.error is not None:  # unknown: the order is not held back from Swift
            log.warning("SignedMsgUserOrders of %s not read: %s", authority,
                        type(outcome.error).__name__)
            answer = True
        else:
            account = outcome.value
            answer = account is not None and account.owner == self._profile.program_id
            if answer:
                self._known.add(authority)
                self._missing.pop(authority, None)
            else:
                self._missing[authority] = time.monotonic()
                log.warning("authority %s has no SignedMsgUserOrders account: its orders go"
                            " on-chain (`quantumvault wallet init-orders`)", authority)
        for future in self._waiting.pop(authority, []):
            future.set(answer)
