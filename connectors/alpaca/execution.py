"""AlpacaExecution: the execution stage when orders go to Alpaca instead of the paper broker.

Pure, like every stage (DESIGN rule 3): it never calls Alpaca. An approved PlaceOrder is
checked against the last balance the broker reported (balance protection) and either
rejected with the check's reason, or acknowledged with OrderSubmitted and put in the
`outbox`, a plain list the live loop drains after each input and sends with
`AsyncAlpaca.submit`. What Alpaca answers comes back later as input events on
`broker.reports` (BrokerOrderSubmitted / BrokerOrderRefused / BrokerTradeUpdate), which
this stage turns into the pipeline's order updates and fills. Because the answers are
recorded inputs, a replay feeds them back and gets the same outputs with no outbox
consumer at all (`outbox=None`: nothing is kept).

It also keeps the orders still working at Alpaca (`working_orders`): what a live run
that follows this one takes over (StateCarriedOver), as it takes over orders open at
Alpaca that firetape does not know when the config adopts (BrokerStateAdopted), so the
trade updates of either are booked to the strategy that sent the order.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import msgspec

from agents.context import Context
from agents.stage import NOTHING, Handler
from connectors.alpaca import wire
from connectors.alpaca.balance import BalanceSnapshot, check_balance
from connectors.alpaca.config import AlpacaConfig
from connectors.alpaca.parse import OrderOrigin, trade_update_events
from schemas.broker import (
    BrokerAccountDetected, BrokerBalanceRead, BrokerOrderRefused, BrokerOrderSubmitted,
    BrokerStateAdopted, BrokerTradeUpdate, WorkingOrder,
)
from schemas.carryover import StateCarriedOver
from schemas.fills import FillExecuted
from schemas.header import Event
from schemas.orders import (
    BUY, SELL, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected,
    OrderPartiallyFilled, OrderSubmitted, PlaceOrder,
)

ZERO = Decimal(0)

# Header index of a rejection; OrderSubmitted uses 0, so the two never share an id.
_REJECTION_INDEX = -1
# An order is no longer working after any of these.
_TERMINAL = (OrderFilled, OrderCanceled, OrderExpired, OrderRejected)
# Trade-update statuses of a bracket leg that is done (it never works again).
_LEG_DONE = ("filled", "canceled", "expired", "rejected", "replaced")


class AlpacaExecution:
    """Execution stage "execution" for Alpaca: orders out (via the outbox), reports in."""

    name = "execution"

    def __init__(self, ctx: Context, config: AlpacaConfig,
                 outbox: list[PlaceOrder] | None = None) -> None:
        self._ctx = ctx
        self._config = config
        self.outbox = outbox
        # The type the live start confirmed with the broker before building the stages
        # (a mismatch refuses to start), so it is known for the first order; recorded on
        # every order event this stage makes.
        self.account_type = config.account_type
        self._balance: BalanceSnapshot | None = None
        # Every order this stage sent, by client order id: a trade update names only the
        # client order id, and the PlaceOrder supplies the strategy and correlation chain.
        self._placed: dict[str, PlaceOrder] = {}
        # Bracket/OTO legs Alpaca creates under its own client order ids, mapped to their
        # parent's: a leg's fill belongs to the parent's strategy and correlation chain.
        self._legs: dict[str, str] = {}
        # OrderAccepted comes from whichever says so first, the submit answer or the
        # "new" trade update; the other must not accept the order a second time.
        self._accepted: set[str] = set()
        # Orders this run took over at its start (an earlier run's, or adopted), by
        # client order id: what their updates need instead of a PlaceOrder.
        self._taken: dict[str, OrderOrigin] = {}
        # Every order (and bracket leg) still working at Alpaca, by client order id, in
        # the order they were sent or taken over.
        self._working: dict[str, WorkingOrder] = {}

    def routes(self) -> Mapping[type, Handler]:
        """PlaceOrder and the broker's reports."""
        return {
            PlaceOrder: self.on_order,
            BrokerAccountDetected: self.on_account,
            BrokerBalanceRead: self.on_balance,
            BrokerOrderSubmitted: self.on_submitted,
            BrokerOrderRefused: self.on_refused,
            BrokerTradeUpdate: self.on_trade_update,
            BrokerStateAdopted: self.on_adopted,
            StateCarriedOver: self.on_carried,
        }

    def finish(self, last_event: Event | None) -> Sequence[Event]:
        """Orders still working at Alpaca stay there; the next start carries them over."""
        return NOTHING

    @property
    def placed(self) -> Mapping[str, PlaceOrder]:
        """Orders sent so far, by client order id."""
        return self._placed

    def working_orders(self) -> tuple[WorkingOrder, ...]:
        """Orders (and bracket legs) sent or taken over and not yet filled, canceled,
        expired or rejected: what is still working at Alpaca as far as this run knows."""
        return tuple(self._working.values())

    # -- orders out --------------------------------------------------------------------

    def on_order(self, order: PlaceOrder) -> Sequence[Event]:
        """Balance check, then OrderSubmitted and the outbox, or OrderRejected."""
        reason = ""
        if order.client_order_id in self._placed:
            # A redelivered order must not be sent twice.
            reason = f"duplicate client_order_id {order.client_order_id!r}"
        else:
            # The order's ts_init is "now" for the pipeline (the receive time of the bar
            # that caused it), never the wall clock, so a replay decides the same.
            check = check_balance(self._balance, self._config, order.ts_init)
            if not check.passed:
                reason = f"{check.name}: {check.reason}"
        if reason:
            return (OrderRejected(**self._ctx.header(order, _REJECTION_INDEX),
                                  client_order_id=order.client_order_id,
                                  account=order.account, symbol=order.symbol, reason=reason,
                                  account_type=self.account_type),)
        self._placed[order.client_order_id] = order
        self._working[order.client_order_id] = WorkingOrder(
            client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
            quantity=order.quantity, strategy=order.strategy,
            correlation_id=order.correlation_id, placed_event_id=order.event_id,
            placed_ns=order.ts_init)
        if self.outbox is not None:
            self.outbox.append(order)
        return (OrderSubmitted(**self._ctx.header(order), client_order_id=order.client_order_id,
                               account=order.account, symbol=order.symbol,
                               account_type=self.account_type),)

    # -- reports in --------------------------------------------------------------------

    def on_account(self, detected: BrokerAccountDetected) -> Sequence[Event]:
        self.account_type = detected.account_type
        self._balance = BalanceSnapshot(detected.equity, detected.buying_power,
                                        detected.ts_init)
        return NOTHING

    def on_balance(self, read: BrokerBalanceRead) -> Sequence[Event]:
        self._balance = BalanceSnapshot(read.equity, read.buying_power, read.ts_init)
        return NOTHING

    def on_submitted(self, report: BrokerOrderSubmitted) -> Sequence[Event]:
        if report.client_order_id in self._accepted:
            return NOTHING
        self._accepted.add(report.client_order_id)
        self._update_working(report.client_order_id, accepted=True,
                             broker_order_id=report.broker_order_id)
        return (OrderAccepted(**self._header(report), client_order_id=report.client_order_id,
                              account=report.account, symbol=report.symbol,
                              broker_order_id=report.broker_order_id,
                              account_type=self.account_type),)

    def on_refused(self, report: BrokerOrderRefused) -> Sequence[Event]:
        self._working.pop(report.client_order_id, None)
        return (OrderRejected(**self._header(report), client_order_id=report.client_order_id,
                              account=report.account, symbol=report.symbol,
                              reason=f"refused by Alpaca: {report.reason}",
                              account_type=self.account_type),)

    def on_adopted(self, adopted: BrokerStateAdopted) -> Sequence[Event]:
        """The broker's positions as adoption fills at their average entry price, and its
        open orders taken over, so their trade updates are booked."""
        self._take_over(adopted.orders)
        return self._opening_fills(adopted, "adopt", (
            (p.strategy, p.symbol, p.quantity, p.avg_entry_price) for p in adopted.positions))

    def on_carried(self, carried: StateCarriedOver) -> Sequence[Event]:
        """The previous live run's open lots as carry-over fills at their own prices, and
        the orders it left working taken over with their strategies."""
        self._take_over(carried.orders)
        return self._opening_fills(carried, "carry", (
            (lot.strategy, lot.symbol, lot.quantity, lot.price) for lot in carried.lots))

    def _opening_fills(self, cause, kind: str, holdings) -> list[FillExecuted]:
        """What a live run starts out holding, (strategy, symbol, signed quantity, price)
        each, as fills in its sleeve (ids `kind`-...): portfolio, risk and allocator take
        them in like any fill."""
        fills = []
        for index, (strategy, symbol, quantity, price) in enumerate(holdings):
            header = self._ctx.header(cause, index)
            fills.append(FillExecuted(
                **header, fill_id=f"{kind}-{header['event_id']}",
                client_order_id=f"{kind}-{symbol}", broker_order_id="",
                account=cause.account, strategy=strategy, symbol=symbol,
                side=BUY if quantity > 0 else SELL, quantity=abs(quantity),
                price=price, commission=ZERO, leaves_quantity=ZERO))
        return fills

    def _take_over(self, orders: Sequence[WorkingOrder]) -> None:
        """Track orders this run did not send: their updates join the chain they began in
        and book their fills to their strategy ("" when firetape never knew it)."""
        for order in orders:
            client_id = order.client_order_id
            self._taken[client_id] = OrderOrigin(order.strategy,
                                                 order.correlation_id or client_id,
                                                 order.placed_event_id)
            self._working[client_id] = order
            if order.accepted:
                self._accepted.add(client_id)

    def on_trade_update(self, report: BrokerTradeUpdate) -> Sequence[Event]:
        """The update's lifecycle and fill events, then the broker's times beside ours."""
        update = wire.trade_update_decoder.decode(report.update)
        client_id = update.order.client_order_id
        parent = self._legs.get(client_id, "")
        placed = (self._placed.get(client_id) or self._taken.get(client_id)
                  or self._placed.get(parent) or self._taken.get(parent))
        if placed is not None:
            # The parent's updates carry its legs (their ids are Alpaca's, not ours); they
            # come before any leg can fill, since legs wait for the parent's fill.
            for leg in update.order.legs or ():
                self._track_leg(leg, client_id, placed)
        translation = trade_update_events(update, placed, self._ctx, report.account,
                                          self.account_type, report.received_ns)
        events: list[Event] = []
        for event in translation.events:
            if isinstance(event, OrderAccepted):
                if client_id in self._accepted:
                    continue
                self._accepted.add(client_id)
                self._update_working(client_id, accepted=True,
                                     broker_order_id=event.broker_order_id)
            elif isinstance(event, FillExecuted):
                working = self._working.get(client_id)
                if working is not None:
                    self._update_working(client_id, broker_order_id=event.broker_order_id,
                                         filled_quantity=working.filled_quantity
                                         + event.quantity)
            elif isinstance(event, OrderPartiallyFilled):
                self._update_working(client_id, avg_fill_price=event.avg_price)
            if isinstance(event, _TERMINAL):
                self._working.pop(client_id, None)
            events.append(event)
        events.append(translation.times)
        return events

    def _track_leg(self, leg: wire.Order, parent_id: str,
                   parent: PlaceOrder | OrderOrigin) -> None:
        """A bracket leg maps to its parent, and works until its own terminal update."""
        leg_id = leg.client_order_id
        if leg_id in self._legs:
            return
        root = self._legs.get(parent_id, parent_id)
        self._legs[leg_id] = root
        if leg.status in _LEG_DONE or leg_id in self._working:
            return
        working_parent = self._working.get(parent_id)
        self._working[leg_id] = WorkingOrder(
            client_order_id=leg_id, symbol=leg.symbol, side=BUY if leg.side == "buy" else SELL,
            quantity=leg.qty or ZERO, filled_quantity=leg.filled_qty,
            strategy=parent.strategy, broker_order_id=leg.id,
            correlation_id=parent.correlation_id, placed_event_id=parent.event_id,
            leg_of=root, avg_fill_price=leg.filled_avg_price or ZERO,
            placed_ns=working_parent.placed_ns if working_parent is not None else 0)

    def _update_working(self, client_id: str, **changes) -> None:
        working = self._working.get(client_id)
        if working is not None:
            self._working[client_id] = msgspec.structs.replace(working, **changes)

    def _header(self, report: Event) -> dict:
        """A report's events join the chain of the order they are about."""
        placed = self._placed.get(report.client_order_id)
        header = self._ctx.header(report)
        if placed is not None:
            header["correlation_id"] = placed.correlation_id
        return header
