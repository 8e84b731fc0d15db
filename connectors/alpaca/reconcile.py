"""Start-up reconciliation: Alpaca's open orders and positions against our own state.

Pure: the broker's state (wire Structs) and the event-sourced state (folded from the
log by `local_state`) in, events out. Every difference is a ReconciliationDifference
event, then a ReconciliationCompleted says what happens now:

- "halted" (`reconciliation = "halt"`, the default): the risk engine halts trading under
  a halt reason of its own, "reconciliation", until the operator's
  ReconciliationAcknowledged (`firetape control ack-reconciliation`), which lifts that
  halt only: a kill switch the operator engaged stays engaged, and releasing the kill
  switch does not lift the reconciliation halt;
- "adopted" (`reconciliation = "adopt"`): no halt, and a BrokerStateAdopted follows
  with the broker's cash and every position it holds, which the run starts from
  (execution books the positions as adoption fills, the portfolio takes the cash);
- "clean": nothing differs (with "adopt", the broker's state is still adopted, since a
  run's portfolio otherwise starts flat).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.config import ADOPT
from schemas.broker import (
    RECONCILED_ADOPTED, RECONCILED_CLEAN, RECONCILED_HALTED, AdoptedPosition,
    BrokerStateAdopted, ReconciliationCompleted, ReconciliationDifference,
)
from schemas.control import ReconciliationAcknowledged
from schemas.header import Event
from schemas.orders import (
    OrderCanceled, OrderExpired, OrderFilled, OrderRejected, PlaceOrder,
)
from schemas.portfolio import PositionChanged

PRODUCER = "reconciliation"
ACK_REASON = "reconciliation acknowledged"
_TERMINAL = (OrderFilled, OrderCanceled, OrderExpired, OrderRejected)
ZERO = Decimal(0)


class LocalState(NamedTuple):
    """What the event log says: net position per symbol, open orders by client order id,
    and the strategy sleeves the positions are made of."""

    positions: Mapping[str, Decimal]
    open_orders: Mapping[str, str]        # client_order_id -> symbol
    sleeves: Mapping[tuple[str, str], Decimal] = {}   # (strategy, symbol) -> quantity
    adopted: bool = False                 # the run started from the broker's state


def local_state(events: Iterable[Event]) -> LocalState:
    """Fold a run's events (in log order) into the state reconciliation compares."""
    positions: dict[str, Decimal] = {}
    sleeves: dict[tuple[str, str], Decimal] = {}
    open_orders: dict[str, str] = {}
    adopted = False
    for event in events:
        if isinstance(event, PlaceOrder):
            open_orders[event.client_order_id] = event.symbol
        elif isinstance(event, _TERMINAL):
            open_orders.pop(event.client_order_id, None)
        elif isinstance(event, PositionChanged):
            positions[event.symbol] = event.account_quantity
            sleeves[(event.strategy, event.symbol)] = event.quantity
        elif isinstance(event, BrokerStateAdopted):
            adopted = True
    return LocalState({s: q for s, q in positions.items() if q != 0}, open_orders,
                      {k: q for k, q in sleeves.items() if q != 0}, adopted)


def local_state_of_runs(runs: Iterable[Iterable[Event]]) -> LocalState:
    """The state of several consecutive runs of one account, each given as its events.

    A run's portfolio starts flat unless it adopted the broker's state, so the net
    position is the last adopting run's final positions (or none) plus the sum of each
    later run's own; an order sent in one run may end in a later one, so open orders are
    folded over all of them.
    """
    positions: dict[str, Decimal] = {}
    sleeves: dict[tuple[str, str], Decimal] = {}
    every_event: list[Event] = []
    for events in runs:
        events = list(events)
        every_event.extend(events)
        state = local_state(events)
        if state.adopted:       # its positions are absolute: what came before is in them
            positions, sleeves = {}, {}
        for symbol, quantity in state.positions.items():
            positions[symbol] = positions.get(symbol, ZERO) + quantity
        for key, quantity in state.sleeves.items():
            sleeves[key] = sleeves.get(key, ZERO) + quantity
    open_orders = local_state(every_event).open_orders
    return LocalState({s: q for s, q in sorted(positions.items()) if q != 0}, open_orders,
                      {k: q for k, q in sorted(sleeves.items()) if q != 0})


def reconcile(broker_positions: list[wire.Position], broker_orders: list[wire.Order],
              local: LocalState, ctx: Context, account: str, resolution: str,
              now_ns: int, cash: Decimal | None = None) -> list[Event]:
    """The differences, the summary, then the halt when there is something to acknowledge
    or, when the config adopts, the broker's state (`cash`: the broker's) to start from."""
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
    # Adopting needs the broker's cash; without it the run cannot take the broker's
    # state, so it halts like `reconciliation = "halt"` would.
    adopt = resolution == ADOPT and cash is not None
    outcome = RECONCILED_CLEAN if not differences else (
        RECONCILED_ADOPTED if adopt else RECONCILED_HALTED)
    # A "halted" outcome is the halt: the risk engine engages it on this event.
    events.append(ReconciliationCompleted(**_header(ctx, now_ns, "completed", 0),
                                          account=account, differences=len(differences),
                                          resolution=outcome))
    if adopt:
        events.append(BrokerStateAdopted(
            **_header(ctx, now_ns, "adopted", 0), account=account, cash=cash,
            positions=adopted_positions(broker_positions, local)))
    return events


def adopted_positions(broker_positions: list[wire.Position],
                      local: LocalState) -> tuple[AdoptedPosition, ...]:
    """Every broker position, by symbol, in the sleeves the earlier runs left it in when
    they add up to the broker's quantity; otherwise whole, unattributed (strategy "")."""
    adopted: list[AdoptedPosition] = []
    for position in sorted(broker_positions, key=lambda p: p.symbol):
        if position.qty == 0:
            continue
        mark = position.current_price if position.current_price is not None \
            else position.avg_entry_price
        sleeves = {strategy: quantity for (strategy, symbol), quantity
                   in sorted(local.sleeves.items()) if symbol == position.symbol}
        if sum(sleeves.values(), ZERO) != position.qty:
            sleeves = {"": position.qty}
        adopted.extend(AdoptedPosition(symbol=position.symbol, quantity=quantity,
                                       avg_entry_price=position.avg_entry_price, mark=mark,
                                       strategy=strategy)
                       for strategy, quantity in sleeves.items())
    return tuple(adopted)


def acknowledgement(run_id: str, account: str, operator: str,
                    now_ns: int) -> ReconciliationAcknowledged:
    """The operator's release of a reconciliation halt (an external input event)."""
    ctx = Context(run_id, "operator", account)
    return ReconciliationAcknowledged(**_header(ctx, now_ns, "ack", operator),
                                      account=account, reason=ACK_REASON, operator=operator)


def _header(ctx: Context, now_ns: int, what: str, index: object) -> dict:
    event_id = ctx.derive_id(ctx.producer, what, now_ns, index)
    return {"event_id": event_id, "ts_event": now_ns, "ts_init": now_ns,
            "correlation_id": ctx.derive_id(ctx.producer, "reconciliation", now_ns),
            "causation_id": "", "producer": ctx.producer, "run_id": ctx.run_id}
