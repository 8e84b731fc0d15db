"""What a real broker tells us, recorded as events: the account it confirmed, start-up
reconciliation (and the broker state adopted), order submission outcomes, trade updates,
and its own clock per update.

Everything a broker says enters the pipeline as an input event on the `broker.reports`
topic (the runtime records it before any stage sees it), so a replay of a live run feeds
the same reports back instead of calling the broker. Only BrokerOrderTimes is an output:
the execution stage derives it from a trade update and publishes it with the order
lifecycle it belongs to (topic `order.updates`).

Money and quantities are Decimal, broker payloads are kept as the JSON text that arrived,
so a report is replayed exactly as it was received.
"""
from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.header import Event

PAPER = "paper"
LIVE = "live"
# ReconciliationCompleted.resolution
RECONCILED_CLEAN = "clean"
RECONCILED_HALTED = "halted"
RECONCILED_ADOPTED = "adopted"


class BrokerAccountDetected(Event, frozen=True, kw_only=True, gc=False):
    """What the broker says the account is, checked against what was asked for at start."""

    account: str              # firetape's account name (run.account)
    broker: str               # "alpaca"
    account_type: str         # "paper" | "live", as the broker confirmed it
    account_number: str       # the broker's (e.g. "PA3ABC..." for Alpaca paper); not a secret
    endpoint: str             # the base URL that answered
    status: str               # the broker's account status, e.g. "ACTIVE"
    equity: Decimal | None = None
    buying_power: Decimal | None = None


class BrokerBalanceRead(Event, frozen=True, kw_only=True, gc=False):
    """A periodic reading of the account's equity and buying power (`ts_init`: when read).

    The execution stage checks each order against the last one (balance protection); a
    reading that never comes makes the last one stale, which fails closed.
    """

    account: str
    equity: Decimal | None = None
    buying_power: Decimal | None = None


class ReconciliationDifference(Event, frozen=True, kw_only=True, gc=False):
    """One difference between the broker's state and the event-sourced portfolio at start.

    `kind`: "position" (quantities differ), "unknown_order" (open at the broker, unknown
    to us), "missing_order" (open for us, not open at the broker).
    """

    account: str
    kind: str
    symbol: str
    broker_value: str         # quantities and ids as text, so Decimals stay exact
    local_value: str
    client_order_id: str = ""
    broker_order_id: str = ""


class ReconciliationCompleted(Event, frozen=True, kw_only=True, gc=False):
    """The end of start-up reconciliation: how many differences, and what happens now.

    `resolution`: "clean" (none), "halted" (trading stays HALTED until acknowledged) or
    "adopted" (config says to take the broker's state as the truth).
    """

    account: str
    differences: int
    resolution: str


class AdoptedPosition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One broker position taken into the run's state, in the sleeve of `strategy`
    ("": unattributed, when earlier runs' sleeves do not add up to the broker's)."""

    symbol: str
    quantity: Decimal          # signed: negative for a short
    avg_entry_price: Decimal   # the broker's, the price the adoption books it at
    mark: Decimal              # the broker's current price, until a bar marks it
    strategy: str = ""


class WorkingOrder(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An order still working at the broker that a run takes over at its start: one the
    previous run sent (carried over, with its strategy and correlation chain) or one open
    at the broker that firetape does not know (adopted, strategy "").

    Execution books its trade updates, risk counts `quantity - filled_quantity` as open
    exposure, and the allocator as in flight for the sleeve. A bracket leg (`leg_of`: its
    parent's client order id) is tracked by execution only, as in the run that sent it.
    """

    client_order_id: str
    symbol: str
    side: str                  # BUY | SELL
    quantity: Decimal          # as ordered
    filled_quantity: Decimal = Decimal(0)
    strategy: str = ""
    broker_order_id: str = ""
    correlation_id: str = ""   # the chain of the bar that caused it ("" when unknown)
    placed_event_id: str = ""  # the PlaceOrder that sent it, the cause of its updates
    accepted: bool = False     # its OrderAccepted was already published
    leg_of: str = ""
    avg_fill_price: Decimal = Decimal(0)   # the broker's average over filled_quantity
    placed_ns: int = 0         # when it was placed (no later than the broker's submission)

    @property
    def remaining(self) -> Decimal:
        """What it may still fill, unsigned."""
        return self.quantity - self.filled_quantity


class BrokerStateAdopted(Event, frozen=True, kw_only=True, gc=False):
    """The run starts from the broker's state (`reconciliation = "adopt"`): its cash,
    every position it holds and every order open there. Execution books the positions as
    adoption fills at their average entry price and takes the orders over; the portfolio
    then takes the broker's cash as its own."""

    account: str
    cash: Decimal
    positions: tuple[AdoptedPosition, ...] = ()
    orders: tuple[WorkingOrder, ...] = ()


class BrokerOrderSubmitted(Event, frozen=True, kw_only=True, gc=False):
    """The broker has the order: the answer to our submission (or the lookup before it).

    `existing`: found by its client order id instead of created by this submission (a
    retry or a restart that would otherwise have duplicated it).
    """

    account: str
    client_order_id: str
    symbol: str
    broker_order_id: str
    status: str               # the broker's order status in its answer, e.g. "accepted"
    existing: bool = False
    attempts: int = 1
    submitted_at_ns: int = 0  # the broker's submitted_at, 0 when it did not say


class BrokerOrderRefused(Event, frozen=True, kw_only=True, gc=False):
    """The broker refused the order (its reason), or its outcome stayed unknown."""

    account: str
    client_order_id: str
    symbol: str
    reason: str
    attempts: int = 1


class BrokerTradeUpdate(Event, frozen=True, kw_only=True, gc=False):
    """One trade update as the broker sent it (`update`: its JSON, untouched).

    `ts_event` is the broker's timestamp of the update, `ts_init` when we received it;
    `backfilled` marks updates reconstructed from the orders endpoint after a disconnect.
    """

    account: str
    client_order_id: str
    update: str
    received_ns: int
    backfilled: bool = False


class BrokerOrderTimes(Event, frozen=True, kw_only=True, gc=False):
    """The broker's own clock for one order update, beside ours (in the header).

    Header `ts_event` is the broker's update timestamp, `ts_init` when we received it; the
    difference is network plus our own latency, which the audit reports per hop.
    """

    account: str
    account_type: str
    client_order_id: str
    broker_order_id: str
    update: str               # the broker's event name: new, fill, partial_fill, canceled, ...
    submitted_at_ns: int = 0
    filled_at_ns: int = 0
    update_ns: int = 0
    received_ns: int = 0
