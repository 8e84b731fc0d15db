"""A live run that continues where the previous live run of the same account stopped.

The previous run's final state (folded from its own event log, see
firetape.runtime.live_carryover) enters the new run as one input event on
`broker.reports`, before reconciliation, so `firetape replay` of the new run feeds the
same state back without reading the earlier run at all.
"""
from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.broker import WorkingOrder
from schemas.header import Event


class CarriedLot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One open FIFO lot of a strategy sleeve: execution books it as a carry-over fill at
    its own price, so the sleeve's cost basis and later realized PnL are unchanged."""

    strategy: str
    symbol: str
    quantity: Decimal          # signed: negative for a short
    price: Decimal


class CarriedMark(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The last close the previous run saw: the mark of a held symbol until a bar comes."""

    symbol: str
    price: Decimal


class CarriedDirection(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The direction a sleeve was last sized to (allocator's key: strategy, or the
    ensemble, and symbol), so a signal that repeats it does not trade again and a change
    of mind closes the carried position."""

    strategy: str
    symbol: str
    direction: int             # -1, 0, 1


class CarriedHalt(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A halt the previous run stopped under and that outlives a restart: an operator's
    kill switch, or a drawdown halt (until its release, not before `until_ts`)."""

    reason: str                # risk.state halt reason: kill_switch | drawdown
    detail: str
    until_ts: int = 0


class CarriedReturns(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A symbol's last close and its recent close-to-close returns (oldest first), as the
    risk engine kept them for the VaR: a restart keeps its tail estimates instead of
    denying new exposure until enough bars have come again."""

    symbol: str
    mark: float
    returns: tuple[float, ...]


class CarriedDay(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The trading day (New York) the previous run last valued the account on. A restart
    on the same day keeps its opening equity and whether its loss limit fired, so a
    restart never hands out a fresh daily-loss budget."""

    date: str                  # ISO date, e.g. "2026-11-20"
    start_equity: Decimal
    loss_breached: bool


class CarriedVote(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A strategy's last target for a symbol as the ensemble counts it (aggregation
    "majority" or "weighted"): a restart keeps the vote instead of counting it FLAT."""

    symbol: str
    strategy: str
    direction: int
    confidence: float


class CarriedTradeRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A strategy's closed trades so far, as Kelly sizing counts them."""

    strategy: str
    wins: int
    losses: int
    win_sum: float
    loss_sum: float


class StateCarriedOver(Event, frozen=True, kw_only=True, gc=False):
    """The state the run starts from: the final state of `from_run`.

    `cash` None and no `lots`: positions and cash come from the broker instead
    (`reconciliation = "adopt"`, BrokerStateAdopted); the sleeves' directions, the halts,
    the trading day, the return histories, the ensemble's votes, the closed-trade records
    and the strategies' state still carry.
    """

    account: str
    from_run: str              # the run directory's name
    from_run_id: str
    cash: Decimal | None = None
    lots: tuple[CarriedLot, ...] = ()
    marks: tuple[CarriedMark, ...] = ()
    orders: tuple[WorkingOrder, ...] = ()
    directions: tuple[CarriedDirection, ...] = ()
    halts: tuple[CarriedHalt, ...] = ()
    day: CarriedDay | None = None
    high_water_mark: Decimal | None = None     # the portfolio's, when it carries cash
    drawdown_ack: Decimal | None = None        # a released drawdown halt stays released
    histories: tuple[CarriedReturns, ...] = ()
    approvals: tuple[int, ...] = ()            # ts_event of risk's latest approvals (rate)
    votes: tuple[CarriedVote, ...] = ()
    trade_records: tuple[CarriedTradeRecord, ...] = ()
    # The strategy stage's state (every strategy instance, with its indicators and its
    # idea of its current target), pickled: empty when the new run's strategy setup
    # differs from the previous run's, and then the strategies start again from bars.
    strategy_state: bytes = b""
