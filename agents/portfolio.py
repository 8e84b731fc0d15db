"""Portfolio: positions, cash, realized and unrealized PnL, equity, high-water mark and
drawdown, per strategy sleeve, in exact Decimal arithmetic.

Positions are kept as FIFO lots, so realized PnL is a sum of (exit - entry) x quantity
products and never involves a division: money never drifts. The account is valued at the
last known closes each time event time advances, and once more at the end of a stream, so
positions still open at the end are marked at the last close.
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal

from agents.context import Context
from agents.prices import exact_price
from agents.stage import NOTHING
from schemas import (
    Bar, BrokerStateAdopted, FillExecuted, PortfolioValued, PositionChanged, StateCarriedOver,
)

ZERO = Decimal(0)
DRAWDOWN_PLACES = Decimal("0.000000000001")


def price_of(x: float) -> Decimal:
    """A market-data float as the exact decimal it was written as (101.25 -> 101.25)."""
    return exact_price(x)


class Sleeve:
    """One strategy's position in one symbol, as FIFO lots of (signed quantity, price)."""

    __slots__ = ("lots", "quantity", "realized")

    def __init__(self) -> None:
        self.lots: deque[list[Decimal]] = deque()
        self.quantity = ZERO
        self.realized = ZERO

    def apply(self, signed_qty: Decimal, price: Decimal, commission: Decimal) -> None:
        """Book a fill: close lots of the opposite sign first (FIFO), open the remainder."""
        self.realized -= commission
        remaining = signed_qty
        while remaining and self.lots and (self.lots[0][0] > 0) != (remaining > 0):
            lot = self.lots[0]
            closed = min(abs(remaining), abs(lot[0]))
            direction = 1 if lot[0] > 0 else -1
            self.realized += (price - lot[1]) * closed * direction
            lot[0] -= closed * direction
            remaining += closed * direction
            if not lot[0]:
                self.lots.popleft()
        if remaining:
            self.lots.append([remaining, price])
        self.quantity += signed_qty

    def avg_price(self) -> Decimal:
        """Average entry price of the open lots (for display; accounting never divides)."""
        if not self.quantity:
            return ZERO
        cost = sum((lot[0] * lot[1] for lot in self.lots), ZERO)
        return (cost / self.quantity).quantize(Decimal("0.000001"))


class PortfolioStage:
    """The portfolio agent: books fills, marks positions, values the account."""

    name = "portfolio"

    def __init__(self, ctx: Context, initial_cash: Decimal) -> None:
        self.ctx = ctx
        self.initial_cash = Decimal(initial_cash)
        self.cash = self.initial_cash
        self.commissions = ZERO
        self.realized = ZERO      # all sleeves, net of commission, kept as fills arrive
        self.sleeves: dict[tuple[str, str], Sleeve] = {}
        self.positions: dict[str, Decimal] = {}   # account net quantity per symbol
        self.marks: dict[str, float] = {}
        self.high_water_mark = self.initial_cash
        self.last_ts: int | None = None

    def routes(self):
        return {Bar: self.on_bar, FillExecuted: self.on_fill,
                BrokerStateAdopted: self.on_adopted, StateCarriedOver: self.on_carried}

    # -- market data -------------------------------------------------------------------
    def on_bar(self, bar: Bar):
        ts = bar.ts_event
        if ts != self.last_ts:
            previous = self.last_ts
            self.last_ts = ts
            if previous is not None:
                # value as of the previous instant, before this bar's close is known
                valued = self._valuation(bar, previous)
                self.marks[bar.symbol] = bar.close
                return (valued,)
        self.marks[bar.symbol] = bar.close
        return NOTHING

    # -- fills -------------------------------------------------------------------------
    def on_fill(self, fill: FillExecuted):
        signed = fill.quantity if fill.side == "BUY" else -fill.quantity
        self.cash -= signed * fill.price + fill.commission
        self.commissions += fill.commission
        key = (fill.strategy, fill.symbol)
        sleeve = self.sleeves.get(key)
        if sleeve is None:
            sleeve = self.sleeves[key] = Sleeve()
        before = sleeve.realized
        sleeve.apply(signed, fill.price, fill.commission)
        self.realized += sleeve.realized - before
        net = self.positions.get(fill.symbol, ZERO) + signed
        if net:
            self.positions[fill.symbol] = net
        else:   # valuations iterate over open positions only
            self.positions.pop(fill.symbol, None)
        ctx = self.ctx   # header keywords written out (see Context.event_id)
        return (PositionChanged(event_id=ctx.event_id(fill), ts_event=fill.ts_event,
                                ts_init=fill.ts_init, correlation_id=fill.correlation_id,
                                causation_id=fill.event_id, producer=ctx.producer,
                                run_id=ctx.run_id, account=fill.account,
                                strategy=fill.strategy, symbol=fill.symbol,
                                quantity=sleeve.quantity, avg_price=sleeve.avg_price(),
                                realized_pnl=sleeve.realized, fill_id=fill.fill_id,
                                account_quantity=net),)

    # -- a live run that starts from the broker's state --------------------------------
    def on_adopted(self, adopted: BrokerStateAdopted):
        """Take the broker's cash as ours. Its positions came just before, as execution's
        adoption fills at their average entry price; until a bar marks them, they are
        marked at the broker's price. The account is valued at once, so risk and sizing
        start from the adopted equity, which is also the new high-water mark."""
        cost = sum((p.quantity * p.avg_entry_price for p in adopted.positions), ZERO)
        self.cash = adopted.cash
        # Unrealized PnL (equity - initial - realized) is then marked value - cost basis.
        self.initial_cash = adopted.cash + cost
        for position in adopted.positions:
            self.marks.setdefault(position.symbol, float(position.mark))
        self.high_water_mark = ZERO
        return (self._valuation(adopted, adopted.ts_event),)

    # -- a live run that continues the previous one ------------------------------------
    def on_carried(self, carried: StateCarriedOver):
        """Take the previous run's cash, last closes and high-water mark. Its open lots
        came just before, as execution's carry-over fills at their own prices; the account
        is valued at once, like an adoption. Without cash (the config adopts the broker's
        state instead) nothing changes here."""
        if carried.cash is None:
            return NOTHING
        for mark in carried.marks:
            self.marks.setdefault(mark.symbol, float(mark.price))
        cost = sum((lot.quantity * lot.price for lot in carried.lots), ZERO)
        self.cash = carried.cash
        self.initial_cash = carried.cash + cost
        # The drawdown goes on from the previous run's peak: a restart is no new peak.
        self.high_water_mark = carried.high_water_mark or ZERO
        return (self._valuation(carried, carried.ts_event),)

    def finish(self, last_event):
        if last_event is None or self.last_ts is None:
            return NOTHING
        return (self._valuation(last_event, self.last_ts, index=1),)

    # -- valuation ---------------------------------------------------------------------
    def mark_of(self, symbol: str) -> Decimal:
        return price_of(self.marks[symbol])

    def _valuation(self, cause, as_of: int, index: int = 0):
        """Value the account at the closes known as of `as_of`."""
        gross = net = ZERO
        marks = self.marks
        for symbol, qty in self.positions.items():
            value = qty * exact_price(marks[symbol])   # qty * self.mark_of(symbol)
            gross += abs(value)
            net += value
        equity = self.cash + net
        if equity > self.high_water_mark:
            self.high_water_mark = equity
        drawdown = ZERO
        if self.high_water_mark > 0:
            drawdown = ((self.high_water_mark - equity) / self.high_water_mark).quantize(
                DRAWDOWN_PLACES)
        realized = self.realized
        ctx = self.ctx   # header keywords written out (see Context.event_id)
        return PortfolioValued(
            event_id=ctx.event_id(cause, index), ts_event=as_of, ts_init=cause.ts_init,
            correlation_id=cause.correlation_id, causation_id=cause.event_id,
            producer=ctx.producer, run_id=ctx.run_id, account=ctx.account,
            cash=self.cash, equity=equity, gross_exposure=gross, net_exposure=net,
            realized_pnl=realized, unrealized_pnl=equity - self.initial_cash - realized,
            commissions=self.commissions, high_water_mark=self.high_water_mark,
            drawdown=drawdown)
