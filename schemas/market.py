"""Market data: bars, quotes and trades. Prices here are measurements (floats);
accounting converts them to exact Decimals at the fill."""
from schemas.header import Event


class Bar(Event, frozen=True, kw_only=True, gc=False):
    """One OHLCV bar; `ts_event` is the time the bar closed (when it became known)."""

    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class Quote(Event, frozen=True, kw_only=True, gc=False):
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class TradeTick(Event, frozen=True, kw_only=True, gc=False):
    symbol: str
    price: float
    size: float
