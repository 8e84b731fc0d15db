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
  with the broker's cash, every position it holds and every order open there, which the
  run starts from (execution books the positions as adoption fills and tracks the
  orders, the portfolio takes the cash, risk counts the orders as open exposure);
- "clean": nothing differs (with "adopt", the broker's state is still adopted).

The local state is what the run starts from: the final state of the previous live run of
the account, carried over (`local_state_of_carried`), or nothing on a fresh start.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

import msgspec

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.config import ADOPT
from connectors.alpaca.parse import rfc3339_ns
from schemas.broker import (
    RECONCILED_ADOPTED, RECONCILED_CLEAN, RECONCILED_HALTED, AdoptedPosition,
    BrokerStateAdopted, ReconciliationCompleted, ReconciliationDifference, WorkingOrder,
)
from schemas.carryover import CarriedLot
from schemas.control import ReconciliationAcknowledged
from schemas.header import Event
from schemas.orders import BUY, SELL

PRODUCER = "reconciliation"
ACK_REASON = "reconciliation acknowledged"
ZERO = Decimal(0)


class LocalState(NamedTuple):
    """What the run starts from: net position per symbol, open orders by client order
    id, and the strategy sleeves the positions are made of."""

    positions: Mapping[str, Decimal]
    open_orders: Mapping[str, str]        # client_order_id -> symbol
    sleeves: Mapping[tuple[str, str], Decimal] = {}   # (strategy, symbol) -> quantity
    # The open orders in full, when known (carried over): adoption keeps their strategy.
    working: Mapping[str, WorkingOrder] = {}


def local_state_of_carried(lots: Iterable[CarriedLot],
                           orders: Iterable[WorkingOrder]) -> LocalState:
    """The state a run carries over from the previous one: its open lots and the orders
    it left working (bracket legs included: they are open at the broker too)."""
    positions: dict[str, Decimal] = {}
    sleeves: dict[tuple[str, str], Decimal] = {}
    for lot in lots:
        positions[lot.symbol] = positions.get(lot.symbol, ZERO) + lot.quantity
        key = (lot.strategy, lot.symbol)
        sleeves[key] = sleeves.get(key, ZERO) + lot.quantity
    working = {order.client_order_id: order for order in orders}
    return LocalState({s: q for s, q in sorted(positions.items()) if q != 0},
                      {cid: order.symbol for cid, order in working.items()},
                      {k: q for k, q in sorted(sleeves.items()) if q != 0}, working)


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
            positions=adopted_positions(broker_positions, local),
            orders=adopted_orders(broker_orders, local)))
    return events


def adopted_orders(broker_orders: list[wire.Order],
                   local: LocalState) -> tuple[WorkingOrder, ...]:
    """Every order open at the broker, as the run takes it over: one the previous run
    sent keeps its strategy and chain (with the broker's filled quantity, which is the
    truth now); one firetape does not know is unattributed (strategy "")."""
    adopted: list[WorkingOrder] = []
    for order in sorted(broker_orders, key=lambda o: o.client_order_id):
        known = local.working.get(order.client_order_id)
        if known is not None:
            adopted.append(msgspec.structs.replace(
                known, filled_quantity=order.filled_qty,
                avg_fill_price=order.filled_avg_price or ZERO,
                broker_order_id=order.id or known.broker_order_id))
            continue
        adopted.append(WorkingOrder(
            client_order_id=order.client_order_id, symbol=order.symbol,
            side=BUY if order.side == "buy" else SELL, quantity=order.qty or ZERO,
            filled_quantity=order.filled_qty, broker_order_id=order.id,
            correlation_id=order.client_order_id, accepted=True,
            avg_fill_price=order.filled_avg_price or ZERO,
            placed_ns=rfc3339_ns(order.submitted_at or order.created_at)))
    return tuple(adopted)


def adopted_positions(broker_positions: list[wire.Position],
                      local: LocalState) -> tuple[AdoptedPosition, ...]:
    """Every broker position, by symbol, in the sleeves the previous run left it in when
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
