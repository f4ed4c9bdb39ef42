"""Remaining accounts (oracles, spot markets, perp markets) for Drift instructions, offline.

The program loads every market the user has a position in, plus the markets the instruction
touches, from ``remaining_accounts``; a missing one fails the margin check. This mirrors
driftpy's ``DriftClient.get_remaining_accounts`` ordering and writability rules (oracles first,
then spot markets, then perp markets, insertion-ordered; a perp market's oracle is writable only
for a writable Prelaunch market; a perp market pulls in its quote spot market read-only) but
takes market facts from the venue profile instead of subscribed market accounts. driftpy's
"recently traded market" cache is not reproduced: callers pass those markets explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable

from driftpy.addresses import get_perp_market_public_key, get_spot_market_public_key
from driftpy.types import UserAccount
from solders.instruction import AccountMeta
from solders.pubkey import Pubkey

from venue.profiles import VenueProfile


class _Maps:
    def __init__(self, profile: VenueProfile) -> None:
        self.profile = profile
        self.oracles: dict[str, AccountMeta] = {}
        self.spot: dict[int, AccountMeta] = {}
        self.perp: dict[int, AccountMeta] = {}

    def add_spot(self, index: int, writable: bool) -> None:
        program_id = self.profile.program_id
        self.spot[index] = AccountMeta(get_spot_market_public_key(program_id, index), False,
                                       writable)
        oracle = self.profile.spot_oracle(index)
        if oracle != Pubkey.default():
            self.oracles[str(oracle)] = AccountMeta(oracle, False, False)

    def add_perp(self, index: int, writable: bool) -> None:
        market = self.profile.market(index)
        self.perp[index] = AccountMeta(
            get_perp_market_public_key(self.profile.program_id, index), False, writable)
        oracle_writable = writable and market.oracle_source == "Prelaunch"
        self.oracles[str(market.oracle)] = AccountMeta(market.oracle, False, oracle_writable)
        self.add_spot(self.profile.quote_spot_market_index, False)

    def metas(self) -> list[AccountMeta]:
        return [*self.oracles.values(), *self.spot.values(), *self.perp.values()]


def remaining_accounts(
    profile: VenueProfile,
    users: Iterable[UserAccount] = (),
    *,
    writable_perp: Iterable[int] = (),
    writable_spot: Iterable[int] = (),
    readable_spot: Iterable[int] = (),
    readable_perp: Iterable[int] = (),
) -> list[AccountMeta]:
    """Remaining accounts for ``users``' open positions plus the markets an instruction names."""
    maps = _Maps(profile)
    for user in users:
        for sp in user.spot_positions:
            if not (sp.scaled_balance == 0 and sp.open_orders == 0):
                maps.add_spot(sp.market_index, False)
            if sp.open_asks != 0 or sp.open_bids != 0:
                maps.add_spot(profile.quote_spot_market_index, False)
        for pp in user.perp_positions:
            available = (pp.base_asset_amount == 0 and pp.quote_asset_amount == 0
                         and pp.open_orders == 0 and pp.lp_shares == 0)
            if not available:
                maps.add_perp(pp.market_index, False)
    for index in readable_perp:
        maps.add_perp(index, False)
    for index in readable_spot:
        maps.add_spot(index, False)
    for index in writable_perp:
        maps.add_perp(index, True)
    for index in writable_spot:
        maps.add_spot(index, True)
    return maps.metas()
