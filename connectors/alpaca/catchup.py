"""What happened at Alpaca to the orders a live run takes over while no run was listening.

Pure. A run that stops leaves orders working at Alpaca; the next one carries them over
(schemas.broker.WorkingOrder) with what it last knew of each: filled quantity, average
price, accepted or not. Between the two runs the trade stream had no listener, so their
fills and terminal states are read from the orders endpoint and turned into the updates
the stream would have sent (`parse.missed_updates`), before reconciliation compares the
run with Alpaca. The same knowledge seeds the trade stream, so that its backfill after a
later disconnect covers these orders too and delivers nothing twice.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from connectors.alpaca import wire
from connectors.alpaca.parse import SeenOrder, missed_updates, seen_after
from schemas.broker import WorkingOrder

NS = 1_000_000_000


def seen_orders(orders: Iterable[WorkingOrder]) -> dict[str, SeenOrder]:
    """What the trade stream would know of each order, by Alpaca's order id (orders the
    broker never acknowledged have no id yet: they are unseen)."""
    seen: dict[str, SeenOrder] = {}
    for order in orders:
        if not order.broker_order_id:
            continue
        status = ("partially_filled" if order.filled_quantity
                  else "new" if order.accepted else "")
        seen[order.broker_order_id] = SeenOrder(order.filled_quantity, order.avg_fill_price,
                                                status)
    return seen


def updates_since(orders: Iterable[WorkingOrder], session_start_ns: int) -> str:
    """The `after` of the orders query that covers every order in `orders` and every
    order of this session (Alpaca filters on submission time; whole seconds, rounded
    down, a second early: `after` is exclusive)."""
    earliest = min((o.placed_ns for o in orders if o.placed_ns), default=session_start_ns)
    start = min(earliest, session_start_ns) // NS - 1
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def missed_while_stopped(broker_orders: Sequence[wire.Order],
                         working: Iterable[WorkingOrder],
                         seen: dict[str, SeenOrder] | None = None
                         ) -> tuple[list[wire.TradeUpdate], dict[str, SeenOrder]]:
    """The updates the working orders missed (parents before their legs, in the broker's
    order), and what is then known of each order (the trade stream's starting point).
    `seen`: what is known already (a catch-up before this one), else what the carried
    orders say.

    `broker_orders` is the orders endpoint's answer with legs nested under their parent;
    a leg is followed when its parent is (its client order id is Alpaca's, unknown to the
    run that sent the parent until the parent reported it).
    """
    working = list(working)
    followed = {order.client_order_id for order in working}
    seen = dict(seen) if seen is not None else seen_orders(working)
    updates: list[wire.TradeUpdate] = []
    for parent in broker_orders:
        legs = parent.legs or ()
        if parent.client_order_id in followed:
            family = (parent, *legs)
        else:
            family = tuple(leg for leg in legs if leg.client_order_id in followed)
        for order in family:
            for update in missed_updates(order, seen.get(order.id)):
                updates.append(update)
                seen[order.id] = seen_after(update, seen.get(order.id))
    return updates, seen
