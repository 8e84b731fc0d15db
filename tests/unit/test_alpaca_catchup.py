"""What the orders a live run takes over missed while no run listened, and the trade
stream's backfill that follows them (and no other order of an earlier session)."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec

from connectors.alpaca import wire
from connectors.alpaca.catchup import missed_while_stopped, seen_orders, updates_since
from connectors.alpaca.parse import SeenOrder, rfc3339_ns
from connectors.alpaca.stream import TradeUpdateStream
from schemas.broker import WorkingOrder
from tests.fixtures.alpaca.recorded import credentials, load

PLACED = "2024-07-01T14:30:00Z"


def working(client_id: str = "ft-1", **changes) -> WorkingOrder:
    fields = dict(client_order_id=client_id, symbol="AAPL", side="BUY", quantity=Decimal(10),
                  strategy="sma_cross", broker_order_id=f"alp-{client_id}", accepted=True,
                  placed_ns=rfc3339_ns(PLACED))
    return WorkingOrder(**{**fields, **changes})


def order(client_id: str = "ft-1", **changes) -> wire.Order:
    fields = {**load("order_new"), "id": f"alp-{client_id}", "client_order_id": client_id,
              "symbol": "AAPL", "qty": "10", "submitted_at": "2024-07-01T14:30:00.5Z",
              **changes}
    return msgspec.convert(fields, wire.Order, strict=False)


def filled(client_id: str = "ft-1", **changes) -> wire.Order:
    return order(client_id, **{"status": "filled", "filled_qty": "10",
                               "filled_avg_price": "11.5",
                               "filled_at": "2024-07-01T15:00:00Z", **changes})


def test_missed_while_stopped_when_working_order_filled_then_one_fill_and_stream_knows_it():
    updates, seen = missed_while_stopped([filled(), filled("someone-else")], [working()])
    assert [(u.event, u.qty, u.price, u.order.client_order_id) for u in updates] == [
        ("fill", Decimal(10), Decimal("11.5"), "ft-1")]
    assert seen["alp-ft-1"] == SeenOrder(Decimal(10), Decimal("11.5"), "filled")
    assert "alp-someone-else" not in seen     # not ours: not followed, not reported


def test_missed_while_stopped_when_partly_filled_before_then_only_the_rest_at_its_price():
    before = working(filled_quantity=Decimal(4), avg_fill_price=Decimal(11))
    (update,) = missed_while_stopped([filled(filled_avg_price="11.6")], [before])[0]
    # 10 at 11.6 on average, 4 of them at 11 already booked: 6 at 12.
    assert (update.event, update.qty, update.price) == ("fill", Decimal(6), Decimal(12))


def test_missed_while_stopped_when_nothing_changed_then_nothing_to_take():
    assert missed_while_stopped([order()], [working()])[0] == []


def test_missed_while_stopped_when_parent_followed_then_its_legs_too_parent_first():
    leg = {**load("order_new"), "id": "leg-tp", "client_order_id": "alpaca-tp",
           "symbol": "AAPL", "qty": "10", "side": "sell", "status": "filled",
           "filled_qty": "10", "filled_avg_price": "13"}
    parent = filled(legs=[leg], order_class="bracket")
    updates, _ = missed_while_stopped([parent], [working()])
    assert [(u.order.client_order_id, u.event) for u in updates] == [
        ("ft-1", "fill"), ("alpaca-tp", "new"), ("alpaca-tp", "fill")]


def test_seen_orders_when_never_acknowledged_then_unseen_and_reach_back_before_placing():
    seen = seen_orders([working(), working("ft-2", broker_order_id="", accepted=False)])
    assert list(seen) == ["alp-ft-1"] and seen["alp-ft-1"].status == "new"
    assert updates_since([working()], rfc3339_ns("2024-07-02T00:00:00Z")) == \
        "2024-07-01T14:29:59Z"
    assert updates_since([], rfc3339_ns("2024-07-02T00:00:00Z")) == "2024-07-01T23:59:59Z"


def test_trade_stream_backfill_when_orders_taken_over_then_follows_them_and_not_others():
    session_start = "2024-07-02T00:00:00Z"
    answers: list[str] = []
    earlier = [filled(),                                       # taken over: its fill
               filled("ft-old"),                               # an earlier session's
               order("ft-now", submitted_at="2024-07-02T00:00:01Z")]   # this session's
    delivered: list = []

    async def orders_since(after: str):
        answers.append(after)
        return earlier

    async def on_update(update, received_ns, backfilled):
        delivered.append((update.order.client_order_id, update.event, backfilled))

    stream = TradeUpdateStream(credentials(), on_update, orders_since,
                               session_start=session_start,
                               taken_over=seen_orders([working()]),
                               reach_back="2024-07-01T14:29:59Z")
    asyncio.run(stream._backfill())
    assert answers == ["2024-07-01T14:29:59Z"]
    assert delivered == [("ft-1", "fill", True), ("ft-now", "new", True)]
    # A second backfill (after a reconnect) finds nothing new.
    delivered.clear()
    asyncio.run(stream._backfill())
    assert delivered == []
