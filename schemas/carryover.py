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


class StateCarriedOver(Event, frozen=True, kw_only=True, gc=False):
    """The state the run starts from: the final state of `from_run`.

    `cash` None and no `lots`: positions and cash come from the broker instead
    (`reconciliation = "adopt"`, BrokerStateAdopted); the sleeves' directions and the
    halts still carry.
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
