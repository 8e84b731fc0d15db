"""Orders: the request (SubmitOrder), the approved order (PlaceOrder) and its lifecycle."""
from decimal import Decimal

from schemas.header import Event

BUY = "BUY"
SELL = "SELL"
MARKET = "MARKET"
LIMIT = "LIMIT"
STOP = "STOP"
DAY = "DAY"
GTC = "GTC"
# The account an order was made for, as every order event records it: "simulated" (the
# paper broker of a backtest or paper session), or what the broker confirmed at start.
SIMULATED = "simulated"
PAPER = "paper"
LIVE = "live"


class SubmitOrder(Event, frozen=True, kw_only=True, gc=False):
    """A request to trade, from sizing to risk. It carries the order's material terms."""

    client_order_id: str
    account: str
    strategy: str
    symbol: str
    side: str                      # BUY | SELL
    quantity: Decimal
    order_type: str = MARKET       # MARKET | LIMIT | STOP
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = GTC       # DAY | GTC
    security_type: str = "EQUITY"
    ref_price: float = 0.0         # close of the bar the decision was made on
    reduce_only: bool = False
    stop_loss: Decimal | None = None    # bracket: protective stop price for the position
    take_profit: Decimal | None = None  # bracket: limit price to take profit
    parent_id: str = ""            # bracket children name their parent's client order id
    account_type: str = SIMULATED  # simulated | paper | live


class PlaceOrder(SubmitOrder, frozen=True, kw_only=True, gc=False):
    """An order risk approved, sent to execution. `decision_id` names the OrderApproved."""

    decision_id: str = ""


class OrderEvent(Event, frozen=True, kw_only=True, gc=False):
    """What every lifecycle update names: the order, its account, its account's type
    (simulated | paper | live) and its symbol."""

    client_order_id: str
    account: str
    symbol: str
    account_type: str = SIMULATED


class OrderSubmitted(OrderEvent, frozen=True, kw_only=True, gc=False):
    pass


class OrderAccepted(OrderEvent, frozen=True, kw_only=True, gc=False):
    broker_order_id: str


class OrderRejected(OrderEvent, frozen=True, kw_only=True, gc=False):
    reason: str


class OrderCanceled(OrderEvent, frozen=True, kw_only=True, gc=False):
    reason: str


class OrderExpired(OrderEvent, frozen=True, kw_only=True, gc=False):
    pass


class OrderPartiallyFilled(OrderEvent, frozen=True, kw_only=True, gc=False):
    filled_quantity: Decimal
    leaves_quantity: Decimal
    avg_price: Decimal


class OrderFilled(OrderEvent, frozen=True, kw_only=True, gc=False):
    filled_quantity: Decimal
    avg_price: Decimal
