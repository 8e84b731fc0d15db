"""Start-up reconciliation: Alpaca's open orders and positions against our own state.

Pure: the broker's state (wire Structs) and the event-sourced state (folded from the
log by `local_state`) in, events out. Every difference is a ReconciliationDifference
event; then, unless the config says to adopt the broker's state, trading is HALTED
with a KillSwitchEngaged whose reason names the acknowledgement command, and stays so
until the operator's KillSwitchReleased (`firetape control ack-reconciliation`).

Why the kill switch: it is the halt the risk engine already has that only an explicit
event lifts. A dedicated "reconciliation" halt reason in risk/ would be cleaner (an
operator releasing a manual kill switch would then not also release this); proposed
to the lead.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.config import ADOPT
from schemas.broker import ReconciliationCompleted, ReconciliationDifference
from schemas.control import KillSwitchEngaged, KillSwitchReleased
from schemas.header import Event
from schemas.orders import (
    OrderCanceled, OrderExpired, OrderFilled, OrderRejected, PlaceOrder,
)
from schemas.portfolio import PositionChanged

PRODUCER = "reconciliation"
ACK_COMMAND = "firetape control ack-reconciliation"
ACK_REASON = "reconciliation acknowledged"
_TERMINAL = (OrderFilled, OrderCanceled, OrderExpired, OrderRejected)
ZERO = Decimal(0)


class LocalState(NamedTuple):
    """What the event log says: net position per symbol, open orders by client order id."""

    positions: Mapping[str, Decimal]
    open_orders: Mapping[str, str]        # client_order_id -> symbol


def local_state(events: Iterable[Event]) -> LocalState:
    """Fold a run's events (in log order) into the state reconciliation compares."""
    positions: dict[str, Decimal] = {}
    open_orders: dict[str, str] = {}
    for event in events:
        if isinstance(event, PlaceOrder):
            open_orders[event.client_order_id] = event.symbol
        elif isinstance(event, _TERMINAL):
            open_orders.pop(event.client_order_id, None)
        elif isinstance(event, PositionChanged):
            positions[event.symbol] = event.account_quantity
    return LocalState({s: q for s, q in positions.items() if q != 0}, open_orders)


def local_state_of_runs(runs: Iterable[Iterable[Event]]) -> LocalState:
    """The state of several consecutive runs of one account, each given as its events.

    Every run's portfolio starts flat (the broker's positions are not adopted into it
    yet), so the net position is the sum of each run's own final positions; an order
    sent in one run may end in a later one, so open orders are folded over all of them.
    """
    positions: dict[str, Decimal] = {}
    every_event: list[Event] = []
    for events in runs:
        events = list(events)
        every_event.extend(events)
        for symbol, quantity in local_state(events).positions.items():
            positions[symbol] = positions.get(symbol, ZERO) + quantity
    open_orders = local_state(every_event).open_orders
    return LocalState({s: q for s, q in sorted(positions.items()) if q != 0}, open_orders)


def reconcile(broker_positions: list[wire.Position], broker_orders: list[wire.Order],
              local: LocalState, ctx: Context, account: str, resolution: str,
              now_ns: int) -> list[Event]:
    """The differences, the summary, and the halt when there is something to acknowledge."""
    differences: list[tuple] = []
    broker_qty = {p.symbol: p.qty for p in broker_positions if p.qty != 0}
    for symbol in sorted(set(broker_qty) | set(local.positions)):
        theirs, ours = broker_qty.get(symbol, ZERO), local.positions.get(symbol, ZERO)
        if theirs != ours:
            differences.append(("position", symbol, str(theirs), str(ours), "", ""))
    open_at_broker = {o.client_order_id: o for o in broker_orders}
    for client_id in sorted(open_at_broker):
        if client_id not in local.open_orders:
            order = open_at_broker[client_id]
            differences.append(("unknown_order", order.symbol, order.status, "none",
                                client_id, order.id))
    for client_id in sorted(local.open_orders):
        if client_id not in open_at_broker:
            differences.append(("missing_order", local.open_orders[client_id], "not open",
                                "open", client_id, ""))
    events: list[Event] = []
    for index, (kind, symbol, theirs, ours, client_id, broker_id) in enumerate(differences):
        events.append(ReconciliationDifference(
            **_header(ctx, now_ns, "difference", index), account=account, kind=kind,
            symbol=symbol, broker_value=theirs, local_value=ours, client_order_id=client_id,
            broker_order_id=broker_id))
    halt = bool(differences) and resolution != ADOPT
    outcome = "clean" if not differences else ("adopted" if resolution == ADOPT else "halted")
    events.append(ReconciliationCompleted(**_header(ctx, now_ns, "completed", 0),
                                          account=account, differences=len(differences),
                                          resolution=outcome))
    if halt:
        events.append(KillSwitchEngaged(
            **_header(ctx, now_ns, "halt", 0), account=account, operator=PRODUCER,
            reason=f"reconciliation: {len(differences)} difference(s) with the broker; "
                   f"trading HALTED until `{ACK_COMMAND}`"))
    return events


def acknowledgement(run_id: str, account: str, operator: str, now_ns: int) -> KillSwitchReleased:
    """The operator's release of a reconciliation halt (an external input event)."""
    ctx = Context(run_id, "operator", account)
    return KillSwitchReleased(**_header(ctx, now_ns, "ack", operator), account=account,
                              reason=ACK_REASON, operator=operator)


def _header(ctx: Context, now_ns: int, what: str, index: object) -> dict:
    event_id = ctx.derive_id(ctx.producer, what, now_ns, index)
    return {"event_id": event_id, "ts_event": now_ns, "ts_init": now_ns,
            "correlation_id": ctx.derive_id(ctx.producer, "reconciliation", now_ns),
            "causation_id": "", "producer": ctx.producer, "run_id": ctx.run_id}
