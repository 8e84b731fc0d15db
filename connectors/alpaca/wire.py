"""Wire Structs: Alpaca's JSON as it arrives, field for field, before any interpretation.

Mirrors alpaca-py's models (alpaca/trading/models.py, alpaca/data/models/bars.py) and
Alpaca's documented REST and stream payloads, but as msgspec Structs decoded straight from
bytes. Deliberate choices:

- Money and quantities are Decimal: Alpaca sends them as JSON strings ("10000.5"), and
  they go into exact accounting (DESIGN rule 2). Bar prices are floats (measurements).
- Timestamps stay strings: Alpaca sends RFC 3339 with up to nanoseconds, and datetime
  keeps microseconds only; `parse.rfc3339_ns` turns them into exact integer nanoseconds.
- Unknown fields are ignored and every field Alpaca may omit has a default, so a new
  field in Alpaca's responses never breaks decoding (the same rule as our own events).
"""
from __future__ import annotations

from decimal import Decimal

import msgspec


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v2/account."""

    id: str
    account_number: str
    status: str
    currency: str = "USD"
    cash: Decimal | None = None
    equity: Decimal | None = None
    last_equity: Decimal | None = None
    buying_power: Decimal | None = None
    regt_buying_power: Decimal | None = None
    daytrading_buying_power: Decimal | None = None
    non_marginable_buying_power: Decimal | None = None
    portfolio_value: Decimal | None = None
    pattern_day_trader: bool = False
    trading_blocked: bool = False
    account_blocked: bool = False
    transfers_blocked: bool = False
    trade_suspended_by_user: bool = False
    shorting_enabled: bool = False
    multiplier: Decimal | None = None
    created_at: str | None = None


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """An order as GET/POST /v2/orders and the trade_updates stream return it."""

    id: str
    client_order_id: str
    created_at: str | None = None
    updated_at: str | None = None
    submitted_at: str | None = None
    filled_at: str | None = None
    expired_at: str | None = None
    canceled_at: str | None = None
    failed_at: str | None = None
    replaced_at: str | None = None
    asset_id: str | None = None
    symbol: str = ""
    asset_class: str | None = None
    notional: Decimal | None = None
    qty: Decimal | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    order_class: str = "simple"
    order_type: str | None = None
    type: str | None = None
    side: str = ""
    time_in_force: str = ""
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: str = ""
    extended_hours: bool = False
    legs: list[Order] | None = None


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v2/positions (one element). `qty` is signed: negative for a short."""

    asset_id: str = ""
    symbol: str
    exchange: str = ""
    asset_class: str = "us_equity"
    qty: Decimal
    side: str = "long"
    avg_entry_price: Decimal
    market_value: Decimal | None = None
    cost_basis: Decimal | None = None
    unrealized_pl: Decimal | None = None
    current_price: Decimal | None = None
    qty_available: Decimal | None = None


class HistoricalBar(msgspec.Struct, frozen=True):
    """One bar of GET /v2/stocks/bars; `t` is the bar's START time."""

    t: str
    o: float
    h: float
    l: float   # noqa: E741 - Alpaca's own field name
    c: float
    v: float
    n: int = 0
    vw: float = 0.0


class BarsPage(msgspec.Struct, frozen=True):
    """One page of GET /v2/stocks/bars: bars by symbol, and the token of the next page."""

    bars: dict[str, list[HistoricalBar]] | None = None
    next_page_token: str | None = None


class StreamBar(msgspec.Struct, frozen=True, tag_field="T", tag="b"):
    """A minute bar message of the market-data stream ({"T": "b", ...}); `t` is its START."""

    S: str
    o: float
    h: float
    l: float   # noqa: E741
    c: float
    v: float
    t: str
    n: int = 0
    vw: float = 0.0


class StreamControl(msgspec.Struct, frozen=True, tag_field="T", tag="success"):
    msg: str


class StreamError(msgspec.Struct, frozen=True, tag_field="T", tag="error"):
    code: int = 0
    msg: str = ""


class StreamSubscription(msgspec.Struct, frozen=True, tag_field="T", tag="subscription"):
    bars: list[str] = []
    trades: list[str] = []
    quotes: list[str] = []


# Every market-data message we act on; other kinds ("t" trades, "q" quotes, ...) are
# decoded as raw dicts by the stream and skipped.
DataMessage = StreamBar | StreamControl | StreamError | StreamSubscription


class TradeUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The `data` of a trade_updates message: the event, the order after it, and for
    fills the execution's own price and quantity."""

    event: str
    order: Order
    timestamp: str | None = None
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None


class TradingStreamMessage(msgspec.Struct, frozen=True):
    """A message of the trading stream: {"stream": ..., "data": {...}}."""

    stream: str
    data: msgspec.Raw = msgspec.Raw(b"{}")


class APIErrorBody(msgspec.Struct, frozen=True):
    """The body of an error response: {"code": 40310000, "message": "insufficient ..."}."""

    code: int = 0
    message: str = ""


# One decoder each, built once: decoding is on the hot path of the streams.
account_decoder = msgspec.json.Decoder(Account)
order_decoder = msgspec.json.Decoder(Order)
orders_decoder = msgspec.json.Decoder(list[Order])
positions_decoder = msgspec.json.Decoder(list[Position])
bars_page_decoder = msgspec.json.Decoder(BarsPage)
trade_update_decoder = msgspec.json.Decoder(TradeUpdate)
trading_message_decoder = msgspec.json.Decoder(TradingStreamMessage)
error_decoder = msgspec.json.Decoder(APIErrorBody)
