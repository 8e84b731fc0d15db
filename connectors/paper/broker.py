"""The paper broker: a pure execution stage that fills approved orders against bars.

Rules beyond the price logic in `matching`:

- No look-ahead. An order can first trade on a bar whose `ts_event` (its close) is later
  than the order's `ts_event` plus latency, so a "next_open" market order fills at the
  open of the bar after its signal bar, never on the signal bar. Only `fill="close"` uses
  the signal bar's close, which the order carries as `ref_price`.
- DAY orders work for one New York trading date: the date of the first bar they are
  eligible to trade on (an order sent after the last bar of a day, e.g. on daily bars,
  joins the next session, as a broker queues it). When the first bar of a later date
  arrives, the order is expired before that bar is matched. GTC orders rest until filled.
- Brackets: when a parent with `stop_loss` and/or `take_profit` is completely filled, its
  children (a STOP at the stop loss, a LIMIT at the take profit, opposite side, the filled
  quantity, GTC) are accepted and rest from the next bar on. They are one-cancels-other:
  the first execution of one leg cancels the other. If both would trade on the same bar,
  the stop wins (it is matched first), because the bar does not say which price came
  first and assuming the loss is the conservative choice.
- A stop that has triggered stays a market order for what it has left (volume cap).
- `finish` fills nothing: at the end of a replay resting orders stay resting, exactly as
  they would at a broker when the data ends; no price exists to fill them at.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from agents.context import Context
from agents.stage import NOTHING, Handler
from connectors.paper.config import CLOSE, ExecutionConfig
from connectors.paper.costs import commission, slipped_price, slippage_factor
from connectors.paper.matching import (
    BarPrices, fill_quantity, match_price, reach_bounds, to_price,
)
from schemas.fills import FillExecuted
from schemas.header import Event
from schemas.market import Bar
from schemas.orders import (
    BUY, DAY, GTC, LIMIT, MARKET, SELL, STOP, OrderAccepted, OrderCanceled, OrderExpired,
    OrderFilled, OrderPartiallyFilled, OrderRejected, OrderSubmitted, PlaceOrder,
)

_NEW_YORK = ZoneInfo("America/New_York")
_HOUR_NS = 3_600_000_000_000
# Average prices are exact sums divided by quantities; ten places keep them exact for any
# realistic grid while bounding the digits a repeating fraction would produce.
_AVG_PRICE_QUANTUM = Decimal("1e-10")
OCO_REASON = "oco: sibling filled"
_MAX_GRID_PRICES = 1 << 16   # past this the price memo starts over
_REJECTION_INDEX = -1
ORDER_TYPES = (MARKET, LIMIT, STOP)
TIMES_IN_FORCE = (DAY, GTC)


def rejection_reason(order: PlaceOrder, fills_at_close: bool, seen: set[str]) -> str:
    """Why the paper broker refuses `order`, or "" when it accepts it."""
    if order.client_order_id in seen:
        # A redelivered order must not trade twice.
        return f"duplicate client_order_id {order.client_order_id!r}"
    if order.side not in (BUY, SELL):
        return f"side must be BUY or SELL, got {order.side!r}"
    if not _positive(order.quantity):
        return f"quantity must be > 0, got {order.quantity}"
    if order.order_type not in ORDER_TYPES:
        return f"order_type must be one of {', '.join(ORDER_TYPES)}, got {order.order_type!r}"
    if order.order_type == LIMIT and not _positive(order.limit_price):
        return f"LIMIT order needs limit_price > 0, got {order.limit_price}"
    if order.order_type == STOP and not _positive(order.stop_price):
        return f"STOP order needs stop_price > 0, got {order.stop_price}"
    if order.time_in_force not in TIMES_IN_FORCE:
        return f"time_in_force must be DAY or GTC, got {order.time_in_force!r}"
    for field in ("stop_loss", "take_profit"):
        value = getattr(order, field)
        if value is not None and not _positive(value):
            return f"{field} must be > 0, got {value}"
    if order.stop_loss is not None and order.take_profit is not None:
        # The stop protects below a long's profit target and above a short's.
        protective = (order.stop_loss < order.take_profit if order.side == BUY
                      else order.stop_loss > order.take_profit)
        if not protective:
            return (f"stop_loss {order.stop_loss} and take_profit {order.take_profit} "
                    f"are on the wrong sides for a {order.side}")
    if (fills_at_close and order.order_type == MARKET
            and not (math.isfinite(order.ref_price) and order.ref_price > 0)):
        return f"fill=close needs the signal bar's close as ref_price > 0, got {order.ref_price}"
    return ""


def _positive(value: Decimal | None) -> bool:
    return value is not None and value.is_finite() and value > 0


class _WorkingOrder:
    """A live order at the paper broker and its execution so far (mutable, broker-private)."""

    __slots__ = ("order", "broker_order_id", "eligible_after", "leaves", "filled", "notional",
                 "fills", "events", "triggered", "session", "sibling", "done", "max_low",
                 "min_high")

    def __init__(self, order: PlaceOrder, broker_order_id: str, eligible_after: int,
                 increment: Decimal) -> None:
        self.order = order
        # A resting limit or stop far from the market must cost little per bar.
        self.max_low, self.min_high = reach_bounds(order.side, order.order_type,
                                                   order.limit_price, order.stop_price,
                                                   increment)
        self.broker_order_id = broker_order_id
        self.eligible_after = eligible_after  # trades only on bars with ts_event > this
        self.leaves = order.quantity
        self.filled = Decimal(0)
        self.notional = Decimal(0)
        self.fills = 0
        self.events = 0                        # index of the next event caused by the order
        self.triggered = False
        self.session: date | None = None       # DAY orders: the trading date they work
        self.sibling: _WorkingOrder | None = None
        self.done = False

    def next_index(self) -> int:
        """A fresh per-order index, so every event id derived from the order is unique."""
        index = self.events
        self.events += 1
        return index


class PaperBroker:
    """Execution stage "execution": PlaceOrder -> lifecycle events and fills, Bar -> fills."""

    name = "execution"

    def __init__(self, ctx: Context, config: ExecutionConfig) -> None:
        self._ctx = ctx
        self._config = config
        self._latency_ns = config.latency_ns
        self._increment = config.price_increment
        self._slippage = slippage_factor(config.slippage_bps)
        self._fills_at_close = config.fill == CLOSE and config.latency_ms == 0
        # symbol -> working orders in arrival order; a symbol with none has no key, so a
        # bar nobody waits for costs one dict lookup.
        self._book: dict[str, list[_WorkingOrder]] = {}
        self._seen_order_ids: set[str] = set()
        self._date_hour = -1               # one-entry cache: bars arrive in time order
        self._date_of_hour = date.min
        # float price -> to_price(price, increment): a backtest puts the same few thousand
        # prices on the grid over and over (see agents.prices for why only positive floats)
        self._grid: dict[float, Decimal] = {}

    def routes(self) -> Mapping[type, Handler]:
        """PlaceOrder -> on_order, Bar -> on_bar."""
        return {PlaceOrder: self.on_order, Bar: self.on_bar}

    def finish(self, last_event: Event | None) -> Sequence[Event]:
        """Nothing to fill at the end of a stream: resting orders stay resting."""
        return NOTHING

    def open_order_ids(self) -> tuple[str, ...]:
        """Client order ids of the orders still working, by symbol then arrival."""
        return tuple(w.order.client_order_id for book in self._book.values() for w in book)

    def on_order(self, order: PlaceOrder) -> Sequence[Event]:
        """Validate, acknowledge and (in "close" mode, market, no latency) fill an order."""
        ctx = self._ctx
        reason = rejection_reason(order, self._fills_at_close, self._seen_order_ids)
        if reason:
            # An index of its own: a redelivered order's rejection must not reuse the id of
            # the OrderSubmitted its first delivery produced.
            return (OrderRejected(**ctx.header(order, _REJECTION_INDEX),
                                  client_order_id=order.client_order_id,
                                  account=order.account, symbol=order.symbol, reason=reason),)
        self._seen_order_ids.add(order.client_order_id)
        working = _WorkingOrder(order, self._broker_order_id(order.client_order_id),
                                order.ts_event + self._latency_ns, self._increment)
        # Header keywords written out (see Context.event_id): what ctx.header gives.
        producer, run_id = ctx.producer, ctx.run_id
        ts_init, correlation_id, causation_id = (order.ts_init, order.correlation_id,
                                                 order.event_id)
        events: list[Event] = [
            OrderSubmitted(event_id=ctx.event_id(order, working.next_index()),
                           ts_event=order.ts_event, ts_init=ts_init,
                           correlation_id=correlation_id, causation_id=causation_id,
                           producer=producer, run_id=run_id,
                           client_order_id=order.client_order_id, account=order.account,
                           symbol=order.symbol),
            OrderAccepted(event_id=ctx.event_id(order, working.next_index()),
                          ts_event=order.ts_event + self._latency_ns, ts_init=ts_init,
                          correlation_id=correlation_id, causation_id=causation_id,
                          producer=producer, run_id=run_id,
                          client_order_id=order.client_order_id, account=order.account,
                          symbol=order.symbol, broker_order_id=working.broker_order_id),
        ]
        events += self._supersede_bracket(order, working)
        if self._fills_at_close and order.order_type == MARKET:
            price = slipped_price(self._grid_price(order.ref_price), order.side,
                                  self._slippage, self._increment)
            events += self._execute(working, order.quantity, price, order.ts_event,
                                    order.ts_init)
        else:
            self._book.setdefault(order.symbol, []).append(working)
        return events

    def _supersede_bracket(self, order: PlaceOrder, working: _WorkingOrder) -> list[Event]:
        """Cancel the resting bracket legs of the same strategy and symbol: a new order
        re-targets that sleeve, and a leg left behind could later trade against a position
        that is no longer there (and open one the strategy never asked for)."""
        book = self._book.get(order.symbol)
        if not book:
            return []
        events: list[Event] = []
        for leg in book:
            if leg.order.parent_id and not leg.done and leg.order.strategy == order.strategy:
                leg.done = True
                events.append(OrderCanceled(
                    **self._ctx.header(leg.order, leg.next_index(), ts_event=order.ts_event,
                                       now=order.ts_init),
                    client_order_id=leg.order.client_order_id, account=leg.order.account,
                    symbol=leg.order.symbol,
                    reason=f"superseded by {order.client_order_id}"))
        if events:
            live = [w for w in book if not w.done]
            if live:
                self._book[order.symbol] = live
            else:
                del self._book[order.symbol]
        return events

    def on_bar(self, bar: Bar) -> Sequence[Event]:
        """Expire and match the symbol's working orders on `bar`, in arrival order."""
        book = self._book.get(bar.symbol)
        if book is None:
            return NOTHING
        return self._match(book, bar)

    def _match(self, book: list[_WorkingOrder], bar: Bar) -> list[Event]:
        ts, now = bar.ts_event, bar.ts_init
        prices = None   # exact Decimal prices, made only when an order may trade
        finite = math.isfinite(bar.open) and math.isfinite(bar.high) and math.isfinite(bar.low)
        trading_date: date | None = None
        events: list[Event] = []
        # A snapshot: bracket children created on this bar join `book` but wait a bar.
        for working in tuple(book):
            if working.done or ts <= working.eligible_after:
                continue
            order = working.order
            if order.time_in_force == DAY:
                trading_date = trading_date or self._trading_date(ts)
                if working.session is None:
                    working.session = trading_date
                elif trading_date > working.session:
                    working.done = True
                    events.append(OrderExpired(
                        **self._ctx.header(order, working.next_index(), ts_event=ts, now=now),
                        client_order_id=order.client_order_id, account=order.account,
                        symbol=order.symbol))
                    continue
            if not finite:
                continue  # a bar without finite prices cannot be traded on
            if not working.triggered and (bar.low > working.max_low
                                          or bar.high < working.min_high):
                continue
            # bar_prices(bar.open, bar.high, bar.low, self._increment); finite (checked)
            prices = prices or BarPrices(self._grid_price(bar.open), self._grid_price(bar.high),
                                         self._grid_price(bar.low))
            price = match_price(order.side, order.order_type, order.limit_price,
                                order.stop_price, prices, self._increment, working.triggered)
            if price is None:
                continue
            if order.order_type == STOP:
                working.triggered = True   # from now on a market order for what is left
            quantity = fill_quantity(working.leaves, bar.volume, self._config.max_volume_share)
            if quantity <= 0:
                continue
            if order.order_type != LIMIT:
                # A limit fill never pays worse than its limit, so only market-like fills slip.
                price = slipped_price(price, order.side, self._slippage, self._increment)
            events += self._execute(working, quantity, price, ts, now)
        if events:  # an order leaves the book only by an event (filled, canceled, expired)
            live = [w for w in book if not w.done]
            if live:
                self._book[bar.symbol] = live
            else:
                del self._book[bar.symbol]
        return events

    def _execute(self, working: _WorkingOrder, quantity: Decimal, price: Decimal,
                 ts_event: int, now: int) -> list[Event]:
        """One execution: the fill, the order's new state, then brackets and OCO."""
        ctx, config, order = self._ctx, self._config, working.order
        first_fill = working.fills == 0
        working.fills += 1
        working.filled += quantity
        working.leaves -= quantity
        working.notional += quantity * price
        avg_price = self._average(working.notional, working.filled)
        # Header keywords written out (see Context.event_id): what ctx.header gives.
        producer, run_id = ctx.producer, ctx.run_id
        correlation_id, causation_id = order.correlation_id, order.event_id
        events: list[Event] = [FillExecuted(
            event_id=ctx.event_id(order, working.next_index()), ts_event=ts_event,
            ts_init=now, correlation_id=correlation_id, causation_id=causation_id,
            producer=producer, run_id=run_id,
            fill_id=ctx.derive_id("fill", order.client_order_id, working.fills),
            client_order_id=order.client_order_id, broker_order_id=working.broker_order_id,
            account=order.account, strategy=order.strategy, symbol=order.symbol,
            side=order.side, quantity=quantity, price=price,
            commission=commission(quantity, config.commission_per_share,
                                  config.commission_per_order, first_fill),
            leaves_quantity=working.leaves)]
        update_id = ctx.event_id(order, working.next_index())
        if working.leaves > 0:
            events.append(OrderPartiallyFilled(
                event_id=update_id, ts_event=ts_event, ts_init=now,
                correlation_id=correlation_id, causation_id=causation_id, producer=producer,
                run_id=run_id, client_order_id=order.client_order_id, account=order.account,
                symbol=order.symbol, filled_quantity=working.filled,
                leaves_quantity=working.leaves, avg_price=avg_price))
        else:
            working.done = True
            events.append(OrderFilled(
                event_id=update_id, ts_event=ts_event, ts_init=now,
                correlation_id=correlation_id, causation_id=causation_id, producer=producer,
                run_id=run_id, client_order_id=order.client_order_id, account=order.account,
                symbol=order.symbol, filled_quantity=working.filled, avg_price=avg_price))
        sibling = working.sibling
        if sibling is not None and not sibling.done:
            # The first execution of a leg cancels the other, even a partial one: letting
            # both legs trade could close more than the position and flip it.
            sibling.done = True
            events.append(OrderCanceled(
                **ctx.header(sibling.order, sibling.next_index(), ts_event=ts_event, now=now),
                client_order_id=sibling.order.client_order_id, account=order.account,
                symbol=order.symbol, reason=OCO_REASON))
        if working.leaves == 0 and (order.stop_loss is not None
                                    or order.take_profit is not None):
            events += self._open_bracket(working, ts_event, now)
        return events

    def _open_bracket(self, parent: _WorkingOrder, ts_event: int, now: int) -> list[Event]:
        """Accept the stop-loss and take-profit children of a completely filled parent."""
        order = parent.order
        exit_side = SELL if order.side == BUY else BUY
        # The stop leg first: on a bar that reaches both, it is matched first and wins.
        legs = []
        if order.stop_loss is not None:
            legs.append(("sl", STOP, None, order.stop_loss))
        if order.take_profit is not None:
            legs.append(("tp", LIMIT, order.take_profit, None))
        children: list[_WorkingOrder] = []
        events: list[Event] = []
        for suffix, order_type, limit_price, stop_price in legs:
            # The child is never published; it takes the header of its own OrderAccepted, so
            # the causation ids of its later events name an event that exists in the log.
            accepted_header = self._ctx.header(order, parent.next_index(), ts_event=ts_event,
                                               now=now)
            child = PlaceOrder(
                **accepted_header,
                client_order_id=f"{order.client_order_id}.{suffix}", account=order.account,
                strategy=order.strategy, symbol=order.symbol, side=exit_side,
                quantity=parent.filled, order_type=order_type, limit_price=limit_price,
                stop_price=stop_price, time_in_force=GTC, security_type=order.security_type,
                ref_price=order.ref_price, parent_id=order.client_order_id,
                decision_id=order.decision_id)
            # Children live at the broker already: no latency, they rest from the next bar.
            working = _WorkingOrder(child, self._broker_order_id(child.client_order_id),
                                    ts_event, self._increment)
            self._seen_order_ids.add(child.client_order_id)
            events.append(OrderAccepted(
                **accepted_header, client_order_id=child.client_order_id,
                account=child.account, symbol=child.symbol,
                broker_order_id=working.broker_order_id))
            children.append(working)
        if len(children) == 2:
            children[0].sibling, children[1].sibling = children[1], children[0]
        self._book.setdefault(order.symbol, []).extend(children)
        return events

    def _average(self, notional: Decimal, quantity: Decimal) -> Decimal:
        # Shown on the price grid when it is exact there (the usual case), else to ten places.
        average = notional / quantity
        on_grid = average.quantize(self._increment, ROUND_HALF_EVEN)
        if on_grid == average:
            return on_grid
        return average.quantize(_AVG_PRICE_QUANTUM, ROUND_HALF_EVEN)

    def _grid_price(self, value: float) -> Decimal:
        """to_price(value, self._increment), remembered per positive float."""
        if value.__class__ is not float:
            return to_price(value, self._increment)
        price = self._grid.get(value)
        if price is None:
            price = to_price(value, self._increment)
            if value > 0.0:
                if len(self._grid) >= _MAX_GRID_PRICES:
                    self._grid.clear()
                self._grid[value] = price
        return price

    def _broker_order_id(self, client_order_id: str) -> str:
        return "paper-" + self._ctx.derive_id("broker-order", client_order_id)[:16]

    def _trading_date(self, ts: int) -> date:
        # New York's UTC offset is whole hours, so the date is constant within a UTC hour.
        hour = ts // _HOUR_NS
        if hour != self._date_hour:
            self._date_hour = hour
            self._date_of_hour = datetime.fromtimestamp(hour * 3600, _NEW_YORK).date()
        return self._date_of_hour
