"""Trading costs of the paper broker: adverse slippage and commission, in exact Decimals."""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from schemas.orders import BUY

_BPS = Decimal(10_000)


def slippage_factor(slippage_bps: float) -> Decimal:
    """The exact fraction a price moves by for `slippage_bps` basis points (5 -> 0.0005)."""
    return Decimal(repr(float(slippage_bps))) / _BPS


def slipped_price(price: Decimal, side: str, factor: Decimal, increment: Decimal) -> Decimal:
    """`price` moved against the trader by `factor`: buys pay more, sells receive less.

    The result is rounded half-even to the price grid, so a slippage smaller than half a
    tick can vanish; that is what a real venue's tick size does too.
    """
    if not factor:
        return price
    moved = price * (1 + factor) if side == BUY else price * (1 - factor)
    return moved.quantize(increment, ROUND_HALF_EVEN)


def commission(quantity: Decimal, per_share: Decimal, per_order: Decimal,
               first_fill: bool) -> Decimal:
    """Commission of one fill: per share on its quantity, plus the order fee on the first fill."""
    fee = per_share * quantity
    if first_fill:
        fee += per_order
    return Decimal(fee)
