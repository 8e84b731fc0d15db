"""What the risk engine remembers between events: the trading state and the account book.

Both are plain mutable objects owned by one RiskStage; the stage is the only writer, so a
replay of the same events rebuilds the same state.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from agents.prices import exact_price
from risk.history import MarkHistory
from risk.valuation import ExposureBook
from schemas.orders import BUY, SELL
from schemas.risk import ACTIVE, HALTED, REDUCING

# Halt reasons. Each maps to the state it imposes; the strictest present wins.
KILL_SWITCH = "kill_switch"
DRAWDOWN = "drawdown"
DAILY_LOSS = "daily_loss"
RECONCILIATION = "reconciliation"   # a live start found differences with the broker
_STATE_OF_REASON = {KILL_SWITCH: HALTED, DRAWDOWN: HALTED, DAILY_LOSS: REDUCING,
                    RECONCILIATION: HALTED}

ZERO = Decimal(0)
# The exchange calendar the daily-loss date and regular hours follow.
NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class Halt:
    """One active halt reason: why, and the earliest event time a release is accepted."""

    reason: str
    detail: str
    until_ts: int = 0


class TradingState:
    """ACTIVE / REDUCING / HALTED, derived from the set of active halt reasons.

    Keeping reasons rather than a single state means releasing one halt (say the kill
    switch) never silently lifts another (say a drawdown halt still cooling down).
    """

    __slots__ = ("halts",)

    def __init__(self) -> None:
        self.halts: dict[str, Halt] = {}

    @property
    def state(self) -> str:
        """The strictest state any active halt imposes; ACTIVE when none remains."""
        if not self.halts:
            return ACTIVE
        states = {_STATE_OF_REASON[reason] for reason in self.halts}
        if HALTED in states:
            return HALTED
        return REDUCING if states else ACTIVE

    def engage(self, halt: Halt) -> None:
        """Add (or refresh) a halt reason."""
        self.halts[halt.reason] = halt

    def lift(self, reason: str) -> bool:
        """Remove a halt reason; True when it was active."""
        return self.halts.pop(reason, None) is not None

    def describe(self) -> str:
        """The active halts as text, for decisions and state-change reasons."""
        return "; ".join(f"{h.reason}: {h.detail}" for h in self.halts.values()) or "none"


def signed(side: str, quantity: Decimal) -> Decimal:
    """`quantity` with the sign of `side` (BUY > 0); ValueError on an unknown side."""
    if side == BUY:
        return quantity
    if side == SELL:
        return -quantity
    raise ValueError(f"unknown side {side!r}")


@dataclass(slots=True)
class OpenOrder:
    """An approved order not yet done: what it may still add to the position."""

    symbol: str
    remaining: Decimal   # signed: BUY > 0


class AccountBook:
    """The engine's own view of the account: positions, open orders, marks, equity.

    Positions come from fills (not from the portfolio stage) so a decision never waits on
    another stage's view; marks and returns come from bars.
    """

    def __init__(self, initial_equity: Decimal, var_lookback: int) -> None:
        self.positions: dict[str, Decimal] = {}
        self.fill_prices: dict[str, Decimal] = {}
        self.open_orders: dict[str, OpenOrder] = {}
        # Signed open quantity per symbol, kept in step with open_orders so a decision
        # does not walk every open order.
        self.open_by_symbol: dict[str, Decimal] = {}
        self.history = MarkHistory(var_lookback)
        self.marks = self.history.marks   # the same dict: last close per symbol
        # Committed positions valued at their marks, updated here whenever a committed
        # quantity changes and by the decision when marks have moved.
        self.exposure = ExposureBook(self.history)
        self.equity = initial_equity
        self.drawdown = ZERO
        # Before the first valuation the initial equity counts as valued at the first
        # event time seen; None until then. Bars go straight to the history, which keeps
        # the time of the first one (see valuation_ts).
        self._valuation_ts: int | None = None
        self.approvals: deque[int] = deque()   # ts_event of recent approvals, oldest first

    @property
    def valuation_ts(self) -> int | None:
        """Event time of the latest valuation; before the first one, of the first event
        seen (a bar, or whatever the stage handled first); None before any event."""
        if self._valuation_ts is None:
            return self.history.first_ts
        return self._valuation_ts

    @valuation_ts.setter
    def valuation_ts(self, ts: int | None) -> None:
        self._valuation_ts = ts

    @property
    def var_lookback(self) -> int:
        """How many returns per symbol the VaR history keeps."""
        return self.history.lookback

    def resize_history(self, var_lookback: int) -> None:
        """Apply a new VaR lookback to every per-symbol return history."""
        self.history.resize(var_lookback)

    def apply_fill(self, client_order_id: str, side: str, quantity: Decimal, price: Decimal,
                   symbol: str, leaves_quantity: Decimal) -> None:
        """Move the position by a fill and shrink the open order it belongs to."""
        delta = signed(side, quantity)
        self.positions[symbol] = self.positions.get(symbol, ZERO) + delta
        self.fill_prices[symbol] = price
        order = self.open_orders.get(client_order_id)
        if order is not None:
            remaining = abs(order.remaining) - quantity
            if remaining <= 0 or leaves_quantity <= 0:
                self.close_order(client_order_id)
            else:
                new_remaining = remaining if order.remaining > 0 else -remaining
                self._move_open(order.symbol, new_remaining - order.remaining)
                order.remaining = new_remaining
        # Moving the open order already revalued its symbol; revalue once, not twice.
        if order is None or order.symbol != symbol:
            self._committed_changed(symbol)

    def add_open_order(self, client_order_id: str, symbol: str, remaining: Decimal) -> None:
        """Record an approved order as open."""
        self.close_order(client_order_id)   # a reused id replaces, never double-counts
        self.open_orders[client_order_id] = OpenOrder(symbol, remaining)
        self._move_open(symbol, remaining)

    def close_order(self, client_order_id: str) -> None:
        """Forget an order that was rejected, canceled, expired or filled."""
        order = self.open_orders.pop(client_order_id, None)
        if order is not None:
            self._move_open(order.symbol, -order.remaining)

    def _move_open(self, symbol: str, delta: Decimal) -> None:
        total = self.open_by_symbol.get(symbol, ZERO) + delta
        if total:
            self.open_by_symbol[symbol] = total
        else:
            self.open_by_symbol.pop(symbol, None)
        self._committed_changed(symbol)

    def _committed_changed(self, symbol: str) -> None:
        self.exposure.set_committed(symbol, self.committed(symbol))

    def committed(self, symbol: str) -> Decimal:
        """Position plus every open order in `symbol`, as if all of them filled."""
        return self.positions.get(symbol, ZERO) + self.open_by_symbol.get(symbol, ZERO)

    def committed_all(self) -> dict[str, Decimal]:
        """`committed` for every symbol with a position or an open order, sorted by symbol."""
        symbols = sorted(self.positions.keys() | self.open_by_symbol.keys())
        return {symbol: self.committed(symbol) for symbol in symbols}

    def mark_price(self, symbol: str) -> Decimal | None:
        """The last close as an exact Decimal, else the last fill price, else None."""
        close = self.marks.get(symbol)
        if close is not None and close > 0 and close != float("inf"):
            # repr gives the shortest text that round-trips: 101.25, not its binary expansion.
            return exact_price(close)
        return self.fill_prices.get(symbol)

    def approvals_within(self, now: int, window_ns: int) -> int:
        """How many approvals fall in (now - window, now]; drops older ones."""
        approvals = self.approvals
        while approvals and approvals[0] <= now - window_ns:
            approvals.popleft()
        return len(approvals)


class TradingDay:
    """The New York trading date of the latest valuation and the equity it opened with.

    The date's bounds are cached in nanoseconds so the common case (same day) is two
    integer comparisons, not a time-zone conversion per valuation.
    """

    __slots__ = ("date", "start_equity", "loss_breached", "_start_ns", "_end_ns")

    def __init__(self) -> None:
        self.date: date | None = None
        self.start_equity = ZERO
        self.loss_breached = False   # the daily-loss limit fires at most once per date
        self._start_ns = 0
        self._end_ns = 0

    def roll(self, ts: int, equity: Decimal) -> bool:
        """Move to the date of `ts`; True when it is a new date (its first valuation)."""
        if self._start_ns <= ts < self._end_ns:
            return False
        self._move_to(_new_york_date(ts))
        self.start_equity = equity
        self.loss_breached = False
        return True

    def resume(self, ts: int, day: date, start_equity: Decimal, loss_breached: bool) -> bool:
        """Continue an earlier run's `day` if `ts` falls on it (a restart the same day):
        its opening equity, and whether its loss limit fired, stay. False, and nothing
        changes, when `ts` is on another date."""
        if _new_york_date(ts) != day:
            return False
        self._move_to(day)
        self.start_equity = start_equity
        self.loss_breached = loss_breached
        return True

    def _move_to(self, day: date) -> None:
        self.date = day
        start = datetime.combine(day, time(0), NEW_YORK)
        end = datetime.combine(day + timedelta(days=1), time(0), NEW_YORK)
        self._start_ns = int(start.timestamp()) * 1_000_000_000
        self._end_ns = int(end.timestamp()) * 1_000_000_000

    def loss(self, equity: Decimal) -> Decimal:
        """The fraction of the day's opening equity lost so far (negative on a gain)."""
        if self.start_equity <= 0:
            return ZERO
        return (self.start_equity - equity) / self.start_equity


def _new_york_date(ts: int) -> date:
    return datetime.fromtimestamp(ts // 1_000_000_000, NEW_YORK).date()
