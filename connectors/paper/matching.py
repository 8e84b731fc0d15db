"""Pure price logic of the paper broker: does an order fill on a bar, at what price, how much.

Bar prices are measurements (floats). They become exact Decimals through their shortest
repr, so 101.25 read from a file stays 101.25, and are then put on the price grid. No
function here knows about events, time or costs.
"""
from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from schemas.orders import BUY, LIMIT, MARKET, STOP


class BarPrices(NamedTuple):
    """A bar's open, high and low as exact prices on the grid."""

    open: Decimal
    high: Decimal
    low: Decimal


def to_price(value: float, increment: Decimal) -> Decimal:
    """A float price as an exact Decimal rounded half-even to `increment`."""
    return Decimal(repr(value)).quantize(increment, ROUND_HALF_EVEN)


def bar_prices(open_: float, high: float, low: float, increment: Decimal) -> BarPrices | None:
    """The bar's prices on the grid, or None when one is not a finite number (unmatchable)."""
    if not (math.isfinite(open_) and math.isfinite(high) and math.isfinite(low)):
        return None
    return BarPrices(to_price(open_, increment), to_price(high, increment),
                     to_price(low, increment))


def match_price(side: str, order_type: str, limit_price: Decimal | None,
                stop_price: Decimal | None, bar: BarPrices, increment: Decimal,
                triggered: bool = False) -> Decimal | None:
    """The price (before slippage) at which the order trades on `bar`, or None if it does not.

    MARKET trades at the open. LIMIT BUY trades when the low reaches the limit, at the
    better of open and limit (a gap down through the limit fills at the open); LIMIT SELL
    mirrors it with the high. STOP BUY triggers when the high reaches the stop, at the worse
    of open and stop (a gap up through the stop fills at the open); STOP SELL mirrors it
    with the low. A stop already `triggered` on an earlier bar is a market order now.
    """
    is_buy = side == BUY
    if order_type == MARKET or (order_type == STOP and triggered):
        return bar.open
    if order_type == LIMIT:
        if is_buy:
            if bar.low > limit_price:
                return None
            price = min(bar.open, limit_price)
            # A limit finer than the grid rounds toward the better side, never past the limit.
            return price.quantize(increment, ROUND_FLOOR)
        if bar.high < limit_price:
            return None
        return max(bar.open, limit_price).quantize(increment, ROUND_CEILING)
    if order_type == STOP:
        if is_buy:
            if bar.high < stop_price:
                return None
            return max(bar.open, stop_price).quantize(increment, ROUND_HALF_EVEN)
        if bar.low > stop_price:
            return None
        return min(bar.open, stop_price).quantize(increment, ROUND_HALF_EVEN)
    return None


def reach_bounds(side: str, order_type: str, limit_price: Decimal | None,
                 stop_price: Decimal | None, increment: Decimal) -> tuple[float, float]:
    """A cheap float pre-check for `match_price`: (max low, min high) a bar needs to trade.

    A bar whose low is above the first bound or whose high is below the second cannot
    trade the order, so the exact Decimal match is skipped. The bounds are one tick looser
    than the trigger, far wider than any float rounding, so the filter never drops a bar
    the exact rule would fill; it only saves the Decimal work on bars far from the price.
    """
    tick = float(increment)
    if order_type == LIMIT:
        trigger = float(limit_price)
        return (trigger + tick, -math.inf) if side == BUY else (math.inf, trigger - tick)
    if order_type == STOP:
        trigger = float(stop_price)
        return (math.inf, trigger - tick) if side == BUY else (trigger + tick, -math.inf)
    return math.inf, -math.inf


def fill_quantity(remaining: Decimal, bar_volume: float, max_volume_share: float) -> Decimal:
    """How much of `remaining` a bar can fill: all of it, or at most floor(share x volume).

    A share of 0 means no cap. A non-finite or negative volume fills nothing under a cap.
    """
    if max_volume_share <= 0:
        return remaining
    if not math.isfinite(bar_volume) or bar_volume <= 0:
        return Decimal(0)
    # The product is computed exactly from both floats' reprs, so 0.1 x 1000 is 100, not 99.
    cap = (Decimal(repr(max_volume_share)) * Decimal(repr(bar_volume))).to_integral_value(
        ROUND_FLOOR)
    return min(remaining, cap)
