"""A market-data float as the exact Decimal it was written as, memoized.

`Decimal(repr(x))` (101.25 -> Decimal("101.25")) costs more than the accounting done with
its result, and a backtest converts the same few thousand prices over and over (cent
prices in a band), so the conversion is remembered per float value. Only positive floats
are kept: 0.0 and -0.0 are equal keys with different Decimals, a NaN never equals itself,
and an int equal to a float (100 == 100.0) must not find the float's "100.0".
"""
from __future__ import annotations

from decimal import Decimal

# Past this many prices the memo starts over: a bound on memory, never on correctness.
_MAX_PRICES = 1 << 16
_prices: dict[float, Decimal] = {}


def exact_price(x: float) -> Decimal:
    """`Decimal(repr(x))`: the shortest decimal that round-trips `x`."""
    if x.__class__ is float:
        price = _prices.get(x)
        if price is None:
            price = Decimal(repr(x))
            if x > 0.0:
                if len(_prices) >= _MAX_PRICES:
                    _prices.clear()
                _prices[x] = price
        return price
    return Decimal(repr(x))
