"""Pure translations: Alpaca's wire Structs in, firetape's domain events (or requests) out.

No I/O and no clock: the time an update was received is passed in, so these functions
give the same events for the same inputs, which is what lets a recorded live session be
replayed. Alpaca's own timestamps become the events' `ts_event` (when it happened at the
broker); our receive time becomes `ts_init`; the difference is the broker hop's latency.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import numpy as np

from agents.context import Context
from connectors.alpaca import wire
from schemas.broker import BrokerOrderTimes
from connectors.alpaca.timeframes import Timeframe
from connectors.files.frame import BarFrame
from schemas.fills import FillExecuted
from schemas.header import Event
from schemas.market import Bar
from schemas.orders import (
    BUY, SELL, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderPartiallyFilled,
    OrderRejected, PlaceOrder,
)

_NS = 1_000_000_000
_FRACTION = re.compile(r"\.(\d+)")
ZERO = Decimal(0)
FEED_PRODUCER = "feed"


def rfc3339_ns(text: str | None) -> int:
    """RFC 3339 text ("2024-01-02T14:30:00.123456789Z") to integer UTC nanoseconds; 0 if None.

    Done by hand because datetime keeps microseconds and Alpaca sends nanoseconds.
    """
    if not text:
        return 0
    digits = ""
    match = _FRACTION.search(text)
    if match:
        digits = match.group(1)
        text = text[:match.start()] + text[match.end():]
    seconds = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    return seconds * _NS + int((digits + "000000000")[:9]) if digits else seconds * _NS


# ---- market data ---------------------------------------------------------------------

def stream_bar_event(bar: wire.StreamBar, run_id: str, received_ns: int,
                     timeframe: Timeframe) -> Bar:
    """A live bar as the Bar event the pipeline consumes; stamped with its close.

    The id is the feed's ("SYMBOL:close_ns"), so a bar received twice (a reconnect that
    resends it) is recognisably the same bar.
    """
    close = timeframe.close_ns(rfc3339_ns(bar.t))
    event_id = f"{bar.S}:{close}"
    return Bar(event_id=event_id, ts_event=close, ts_init=received_ns, correlation_id=event_id,
               causation_id="", producer=FEED_PRODUCER, run_id=run_id, symbol=bar.S,
               open=bar.o, high=bar.h, low=bar.l, close=bar.c, volume=bar.v)


def stream_bar_of(symbol: str, bar: wire.HistoricalBar) -> wire.StreamBar:
    """A historical bar as the stream would have sent it: the backfill after a market-data
    disconnect delivers it through the same path, so it gets the same event id."""
    return wire.StreamBar(S=symbol, o=bar.o, h=bar.h, l=bar.l, c=bar.c, v=bar.v, t=bar.t,
                          n=bar.n, vw=bar.vw)


def bars_frame(bars: Mapping[str, list[wire.HistoricalBar]], timeframe: Timeframe,
               source: str = "alpaca") -> BarFrame:
    """Historical bars by symbol as a BarFrame (close-stamped, sorted), for write_bars."""
    rows = [(timeframe.close_ns(rfc3339_ns(b.t)), symbol, b.o, b.h, b.l, b.c, b.v)
            for symbol, series in bars.items() for b in series]
    if not rows:
        return BarFrame.empty()
    ts, symbols, o, h, low, c, v = zip(*rows)
    return BarFrame.from_columns(np.array(ts, np.int64), list(symbols), sources=(source,),
                                 open=np.array(o), high=np.array(h), low=np.array(low),
                                 close=np.array(c), volume=np.array(v))


# ---- orders out ----------------------------------------------------------------------

def order_request(order: PlaceOrder) -> dict:
    """The JSON body of POST /v2/orders for an approved order.

    Alpaca's enums are lower case; quantities and prices go as strings so they stay exact.
    A parent with stop_loss/take_profit becomes one bracket order (Alpaca manages the legs).
    """
    body: dict = {
        "symbol": order.symbol,
        "qty": str(order.quantity),
        "side": order.side.lower(),
        "type": order.order_type.lower(),
        "time_in_force": order.time_in_force.lower(),
        "client_order_id": order.client_order_id,
    }
    if order.limit_price is not None:
        body["limit_price"] = str(order.limit_price)
    if order.stop_price is not None:
        body["stop_price"] = str(order.stop_price)
    if order.take_profit is not None or order.stop_loss is not None:
        body["order_class"] = "bracket" if (order.take_profit is not None
                                            and order.stop_loss is not None) else "oto"
        if order.take_profit is not None:
            body["take_profit"] = {"limit_price": str(order.take_profit)}
        if order.stop_loss is not None:
            body["stop_loss"] = {"stop_price": str(order.stop_loss)}
    return body


def order_rejected(placed: PlaceOrder, reason: str, ctx: Context, received_ns: int,
                   attempt: int = 0) -> OrderRejected:
    """Alpaca refused the order (or we did, e.g. balance): a rejection with the reason."""
    header = _header(ctx, placed, ("rejected", placed.client_order_id, attempt),
                     received_ns, received_ns)
    return OrderRejected(**header, client_order_id=placed.client_order_id,
                         account=placed.account, symbol=placed.symbol, reason=reason,
                         account_type=placed.account_type)


# ---- order updates back --------------------------------------------------------------

class OrderOrigin(NamedTuple):
    """What an order's events need of the PlaceOrder that sent it, for an order a live run
    took over at its start (schemas.broker.WorkingOrder): the strategy, the correlation
    chain and the cause. An order firetape never sent has strategy "", its own client
    order id as the chain and no cause, as with no PlaceOrder at all."""

    strategy: str
    correlation_id: str
    event_id: str


class Translation(NamedTuple):
    """What one trade update means: pipeline events, and the broker's times beside ours."""

    events: tuple[Event, ...]
    times: BrokerOrderTimes


def trade_update_events(update: wire.TradeUpdate, placed: PlaceOrder | OrderOrigin | None,
                        ctx: Context, account: str, account_type: str,
                        received_ns: int) -> Translation:
    """Translate one trade update into order-update and fill events.

    `placed` is the PlaceOrder with this client order id if firetape sent it (it supplies
    the strategy and the correlation chain); None for an order placed elsewhere, whose
    events still go out, with strategy "" so the portfolio and audit see them. (For a
    bracket leg, the caller passes the parent's PlaceOrder; for an order taken over at a
    live start, its OrderOrigin.)
    Updates that change nothing for the pipeline (pending_new, accepted, done_for_day,
    pending_cancel, replaced, ...) give no events, only the broker times.
    """
    order = update.order
    broker_ts = rfc3339_ns(update.timestamp) or received_ns
    key = (order.id, update.event, update.execution_id or update.timestamp or "")
    header = _header(ctx, placed, key, broker_ts, received_ns, order.client_order_id)
    base = dict(client_order_id=order.client_order_id, account=account, symbol=order.symbol)
    typed = dict(base, account_type=account_type)      # the order events' (not the fill's)
    kind = update.event
    events: tuple[Event, ...] = ()
    if kind == "new":
        events = (OrderAccepted(**header, **typed, broker_order_id=order.id),)
    elif kind in ("fill", "partial_fill"):
        events = _fill_events(update, placed, ctx, key, broker_ts, received_ns, header, base,
                              typed)
    elif kind == "canceled":
        events = (OrderCanceled(**header, **typed, reason="canceled at broker"),)
    elif kind == "expired":
        events = (OrderExpired(**header, **typed),)
    elif kind == "rejected":
        events = (OrderRejected(**header, **typed, reason=f"rejected by Alpaca (status "
                                                             f"{order.status or 'rejected'})"),)
    times_header = _header(ctx, placed, (*key, "times"), broker_ts, received_ns,
                           order.client_order_id)
    times = BrokerOrderTimes(**times_header, account=account, account_type=account_type,
                             client_order_id=order.client_order_id, broker_order_id=order.id,
                             update=kind, submitted_at_ns=rfc3339_ns(order.submitted_at),
                             filled_at_ns=rfc3339_ns(order.filled_at), update_ns=broker_ts,
                             received_ns=received_ns)
    return Translation(events, times)


def _fill_events(update, placed, ctx, key, broker_ts, received_ns, header, base, typed):
    order = update.order
    quantity = update.qty if update.qty is not None else order.filled_qty
    price = update.price if update.price is not None else (order.filled_avg_price or ZERO)
    leaves = (order.qty or ZERO) - order.filled_qty
    fill_header = _header(ctx, placed, (*key, "fill"), broker_ts, received_ns,
                          order.client_order_id)
    fill = FillExecuted(
        **fill_header, fill_id=update.execution_id or ctx.derive_id("fill", *key),
        broker_order_id=order.id, strategy=placed.strategy if placed else "",
        side=BUY if order.side == "buy" else SELL, quantity=quantity, price=price,
        # Alpaca charges no commission on US equities; regulatory fees come later, in
        # account activities, and are not per-fill.
        commission=ZERO, leaves_quantity=leaves, **base)
    avg = order.filled_avg_price if order.filled_avg_price is not None else price
    if update.event == "partial_fill":
        status = OrderPartiallyFilled(**header, **typed, filled_quantity=order.filled_qty,
                                      leaves_quantity=leaves, avg_price=avg)
    else:
        status = OrderFilled(**header, **typed, filled_quantity=order.filled_qty,
                             avg_price=avg)
    return (fill, status)


def _header(ctx: Context, placed: PlaceOrder | OrderOrigin | None, key: tuple, ts_event: int,
            received_ns: int, client_order_id: str = "") -> dict:
    """A header derived from the broker's identifiers, so a redelivered update (after a
    reconnect) gets the same event id and can be recognised as a duplicate."""
    correlation = placed.correlation_id if placed else client_order_id
    return {
        "event_id": ctx.derive_id(ctx.producer, *key),
        "ts_event": ts_event, "ts_init": received_ns,
        "correlation_id": correlation,
        "causation_id": placed.event_id if placed else "",
        "producer": ctx.producer, "run_id": ctx.run_id,
    }


# ---- backfill after a disconnect -----------------------------------------------------

class SeenOrder(NamedTuple):
    """What the trade stream last told us about one order."""

    filled_qty: Decimal
    filled_avg_price: Decimal
    status: str


_TERMINAL_EVENTS = {"canceled": "canceled", "expired": "expired", "rejected": "rejected"}


def missed_updates(order: wire.Order, seen: SeenOrder | None) -> list[wire.TradeUpdate]:
    """Trade updates the stream would have sent for `order` while we were disconnected.

    The orders endpoint gives only the order's state now, so the missed executions are
    folded into one synthetic fill of the difference in filled quantity, at the price that
    makes the average come out right; then the terminal state, if it changed. The
    execution id names the backfill so it never collides with a real one.
    """
    seen = seen or SeenOrder(ZERO, ZERO, "")
    updates: list[wire.TradeUpdate] = []
    # A "held" bracket leg is not working yet: it becomes "new" when its parent fills.
    if seen.status == "" and order.status not in ("pending_new", "rejected", "held"):
        updates.append(wire.TradeUpdate(event="new", order=order,
                                        timestamp=order.submitted_at or order.updated_at))
    missed = order.filled_qty - seen.filled_qty
    if missed > 0:
        total = (order.filled_avg_price or ZERO) * order.filled_qty
        price = (total - seen.filled_avg_price * seen.filled_qty) / missed
        done = order.qty is not None and order.filled_qty >= order.qty
        updates.append(wire.TradeUpdate(
            event="fill" if done else "partial_fill", order=order,
            timestamp=order.filled_at or order.updated_at,
            execution_id=f"backfill-{order.id}-{order.filled_qty}", price=price, qty=missed))
    terminal = _TERMINAL_EVENTS.get(order.status)
    if terminal and seen.status != order.status:
        stamp = {"canceled": order.canceled_at, "expired": order.expired_at,
                 "rejected": order.failed_at}[terminal]
        updates.append(wire.TradeUpdate(event=terminal, order=order,
                                        timestamp=stamp or order.updated_at))
    return updates


def seen_after(update: wire.TradeUpdate, previous: SeenOrder | None = None) -> SeenOrder:
    """The SeenOrder an update leaves behind (the stream's state per order).

    Only a fill moves the filled quantity: a backfilled "new" carries the order as it is
    now (maybe already filled), and taking its quantities would hide the missed fill.
    """
    order = update.order
    previous = previous or SeenOrder(ZERO, ZERO, "")
    if update.event in ("fill", "partial_fill"):
        status = "filled" if update.event == "fill" else "partially_filled"
        return SeenOrder(order.filled_qty, order.filled_avg_price or ZERO, status)
    status = _TERMINAL_EVENTS.get(update.event) or (
        update.event if update.event in ("new", "pending_new", "accepted") else previous.status)
    return SeenOrder(previous.filled_qty, previous.filled_avg_price, status)


def already_seen(update: wire.TradeUpdate, seen: SeenOrder | None) -> bool:
    """Whether a live update only repeats what a backfill already delivered.

    After a reconnect the backfill runs while the stream is already listening, so an
    update may arrive for state the backfill has covered; it must not fill twice.
    """
    if seen is None:
        return False
    order = update.order
    if update.event in ("fill", "partial_fill"):
        return order.filled_qty <= seen.filled_qty
    if update.event == "new":
        return seen.status not in ("", "pending_new", "accepted")
    return update.event in _TERMINAL_EVENTS and seen.status == update.event
