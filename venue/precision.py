"""The venue's integer units as Decimals, from driftpy's precision constants, for every caller."""

from decimal import Decimal

from driftpy.constants.numeric_constants import BASE_PRECISION, PRICE_PRECISION

__all__ = ["BASE", "PRICE"]

BASE = Decimal(BASE_PRECISION)  # base amounts: units per contract (1e9)
PRICE = Decimal(PRICE_PRECISION)  # prices: units per quote dollar (1e6)
