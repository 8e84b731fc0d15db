"""Fills: each execution, exact prices and costs."""
from decimal import Decimal

from schemas.header import Event


class FillExecuted(Event, frozen=True, kw_only=True, gc=False):
    """One execution of an order. `quantity` is unsigned; `side` says the direction."""

    fill_id: str
    client_order_id: str
    broker_order_id: str
    account: str
    strategy: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    leaves_quantity: Decimal
