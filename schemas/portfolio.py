"""Portfolio changes: positions after each fill, and valuations (equity, drawdown)."""
from decimal import Decimal

from schemas.header import Event


class PositionChanged(Event, frozen=True, kw_only=True, gc=False):
    """A position of one strategy's sleeve after a fill (quantity signed, long > 0)."""

    account: str
    strategy: str
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal     # of this sleeve-position, cumulative, net of commission
    fill_id: str
    account_quantity: Decimal = Decimal(0)   # the account's net position in the symbol


class PortfolioValued(Event, frozen=True, kw_only=True, gc=False):
    """The account marked at the last known closes, as of `ts_event`."""

    account: str
    cash: Decimal
    equity: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    commissions: Decimal
    high_water_mark: Decimal
    drawdown: Decimal         # fraction below the high-water mark, 0..1
