"""Events the Alpaca connector needs that schemas/ does not have yet.

They follow `schemas.header.Event` exactly (frozen, tagged by class name, header first) so
the lead can move them into schemas/ and the topic registry unchanged. Until then they are
produced only by this package and are not routed by the embedded bus.

Proposed topics: BrokerAccountDetected, ReconciliationDifference, ReconciliationCompleted
-> "control" (key: account, so every agent sees them); BrokerOrderTimes -> "order.updates".
"""
from __future__ import annotations

from decimal import Decimal

from schemas.header import Event

PAPER = "paper"
LIVE = "live"


class BrokerAccountDetected(Event, frozen=True, kw_only=True, gc=False):
    """What the broker says the account is, checked against what was asked for at start."""

    account: str              # firetape's account name (run.account)
    broker: str               # "alpaca"
    account_type: str         # "paper" | "live", as the broker confirmed it
    account_number: str       # Alpaca's (e.g. "PA3ABC..." for paper); not a secret
    endpoint: str             # the base URL that answered
    status: str               # Alpaca's account status, e.g. "ACTIVE"
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


class BrokerOrderTimes(Event, frozen=True, kw_only=True, gc=False):
    """The broker's own clock for one order update, beside ours (in the header).

    Header `ts_event` is the broker's update timestamp, `ts_init` when we received it; the
    difference is network plus our own latency, which the audit reports per hop.
    """

    account: str
    account_type: str
    client_order_id: str
    broker_order_id: str
    update: str               # Alpaca's event name: new, fill, partial_fill, canceled, ...
    submitted_at_ns: int = 0
    filled_at_ns: int = 0
    update_ns: int = 0
    received_ns: int = 0
