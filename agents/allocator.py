"""The allocator: aggregates signals, sizes the target and requests the order that moves
each sleeve from where it is (filled + in flight) to where the strategy wants it.

It acts only when a sleeve's target direction changes, so a denied order is not retried
behind risk's back: the next change of mind is a new request.
"""
from __future__ import annotations

from decimal import Decimal

import msgspec

from agents.aggregation import ENSEMBLE, AggregationConfig, majority, weighted
from agents.context import Context
from agents.sizing import SizingConfig, TradeRecord, target_shares
from agents.stage import NOTHING
from schemas import (
    BrokerStateAdopted,
    FillExecuted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderRejected,
    PortfolioValued,
    PositionChanged,
    SignalGenerated,
    StateCarriedOver,
    SubmitOrder,
)
from schemas.orders import BUY, GTC, LIMIT, MARKET, SELL, SIMULATED
from schemas.signals import FLAT

ZERO = Decimal(0)
TICK = Decimal("0.0001")


class OrderTerms(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """[orders] in firetape.toml: how the allocator's orders are placed."""

    type: str = "market"            # market | limit (at the signal close +/- offset)
    limit_offset_bps: float = 0.0   # limit orders: how far through the close to bid/offer
    time_in_force: str = GTC
    stop_loss_pct: float = 0.0      # bracket on entries; 0 = none
    take_profit_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.type not in ("market", "limit"):
            raise ValueError(f"orders.type: {self.type!r} is not market or limit")
        if self.time_in_force not in ("DAY", "GTC"):
            raise ValueError(f"orders.time_in_force: {self.time_in_force!r} is not DAY or GTC")
        if not 0 <= self.stop_loss_pct < 1 or self.take_profit_pct < 0:
            raise ValueError("orders.stop_loss_pct must be in [0, 1), take_profit_pct >= 0")


def _price(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(TICK)


class AllocatorStage:
    """Signals -> sized SubmitOrder requests, per strategy sleeve or per ensemble."""

    name = "allocator"

    def __init__(self, ctx: Context, *, strategies: list[str], initial_equity: Decimal,
                 sizing: SizingConfig = SizingConfig(),
                 aggregation: AggregationConfig = AggregationConfig(),
                 terms: OrderTerms = OrderTerms(), account_type: str = SIMULATED) -> None:
        self.ctx = ctx
        self.account_type = account_type    # stamped on every request (schemas.orders)
        self.strategies = list(strategies)
        self.sizing = sizing
        self.aggregation = aggregation
        self.terms = terms
        self.equity = Decimal(initial_equity)
        self.votes: dict[str, dict[str, tuple[int, float]]] = {}
        self.direction: dict[tuple[str, str], int] = {}
        self.position: dict[tuple[str, str], Decimal] = {}
        self.pending: dict[tuple[str, str], Decimal] = {}
        self.open_orders: dict[str, tuple[tuple[str, str], Decimal]] = {}
        self.records: dict[str, TradeRecord] = {}
        self.realized_at_open: dict[tuple[str, str], Decimal] = {}

    def routes(self):
        return {
            SignalGenerated: self.on_signal,
            OrderDenied: self.on_order_closed,
            OrderRejected: self.on_order_closed,
            OrderCanceled: self.on_order_closed,
            OrderExpired: self.on_order_closed,
            FillExecuted: self.on_fill,
            PositionChanged: self.on_position,
            PortfolioValued: self.on_valued,
            StateCarriedOver: self.on_carried,
            BrokerStateAdopted: self.on_taken_over,
        }

    def finish(self, last_event):
        return NOTHING

    # -- signals -----------------------------------------------------------------------
    def on_signal(self, signal: SignalGenerated):
        if self.aggregation.mode == "none":
            key = (signal.strategy, signal.symbol)
            direction = signal.direction
        else:
            votes = self.votes.setdefault(signal.symbol, {})
            votes[signal.strategy] = (signal.direction, signal.confidence)
            key = (ENSEMBLE, signal.symbol)
            if self.aggregation.mode == "majority":
                direction = majority(votes, len(self.strategies))
            else:
                direction = weighted(votes, len(self.strategies), self.aggregation.threshold,
                                     self.aggregation.long_only)
        if self.direction.get(key, FLAT) == direction:
            return NOTHING
        self.direction[key] = direction
        shares = ZERO
        if direction != FLAT:
            shares = target_shares(self.sizing, price=signal.price, equity=self.equity,
                                   volatility=signal.volatility,
                                   record=self.records.get(key[0]))
        target = shares * direction
        current = self.position.get(key, ZERO) + self.pending.get(key, ZERO)
        delta = target - current
        if not delta:
            return NOTHING
        return (self._request(signal, key, delta, current, target),)

    def _request(self, signal, key, delta: Decimal, current: Decimal, target: Decimal):
        ctx = self.ctx
        event_id = ctx.event_id(signal)
        client_order_id = "ft-" + event_id[:24]
        side = BUY if delta > 0 else SELL
        reducing = current != 0 and current * target >= 0 and abs(target) < abs(current)
        terms = self.terms
        order_type, limit_price = MARKET, None
        if terms.type == "limit":
            offset = terms.limit_offset_bps / 10_000
            order_type = LIMIT
            limit_price = _price(signal.price * (1 + offset if side == BUY else 1 - offset))
        stop_loss = take_profit = None
        if not reducing and target != 0:
            up = 1 if target > 0 else -1
            if terms.stop_loss_pct:
                stop_loss = _price(signal.price * (1 - up * terms.stop_loss_pct))
            if terms.take_profit_pct:
                take_profit = _price(signal.price * (1 + up * terms.take_profit_pct))
        self.open_orders[client_order_id] = (key, delta)
        self.pending[key] = self.pending.get(key, ZERO) + delta
        return SubmitOrder(   # header keywords written out (see Context.event_id)
            event_id=event_id, ts_event=signal.ts_event, ts_init=signal.ts_init,
            correlation_id=signal.correlation_id, causation_id=signal.event_id,
            producer=ctx.producer, run_id=ctx.run_id,
            client_order_id=client_order_id, account=ctx.account,
            strategy=key[0], symbol=signal.symbol, side=side, quantity=abs(delta),
            order_type=order_type, limit_price=limit_price, time_in_force=terms.time_in_force,
            ref_price=signal.price, reduce_only=reducing, stop_loss=stop_loss,
            take_profit=take_profit, account_type=self.account_type)

    # -- order outcomes ----------------------------------------------------------------
    def on_order_closed(self, event):
        """Denied, rejected, canceled or expired: what was in flight will not fill."""
        entry = self.open_orders.pop(event.client_order_id, None)
        if entry is not None:
            key, remaining = entry
            self.pending[key] -= remaining
        return NOTHING

    def on_fill(self, fill: FillExecuted):
        key = (fill.strategy, fill.symbol)
        signed = fill.quantity if fill.side == BUY else -fill.quantity
        self.position[key] = self.position.get(key, ZERO) + signed
        entry = self.open_orders.get(fill.client_order_id)
        if entry is not None:
            self.pending[key] -= signed
            remaining = entry[1] - signed
            if remaining:
                self.open_orders[fill.client_order_id] = (key, remaining)
            else:
                del self.open_orders[fill.client_order_id]
        return NOTHING

    def on_position(self, change: PositionChanged):
        """Closed trades feed Kelly sizing: PnL from flat to flat, per strategy."""
        key = (change.strategy, change.symbol)
        if change.quantity == 0:
            opened = self.realized_at_open.pop(key, ZERO)
            record = self.records.setdefault(change.strategy, TradeRecord())
            record.add(float(change.realized_pnl - opened))
        elif key not in self.realized_at_open:
            self.realized_at_open[key] = change.realized_pnl
        return NOTHING

    # -- a live start: what the previous run left, or the broker's state --------------
    def on_carried(self, carried: StateCarriedOver):
        """Each sleeve's last direction, so the carried position is what the next signal
        is measured against; the ensemble's votes of the strategies still configured; each
        strategy's closed trades for Kelly; and the orders still working, as in flight."""
        for sleeve in carried.directions:
            self.direction[(sleeve.strategy, sleeve.symbol)] = sleeve.direction
        for vote in carried.votes:
            if vote.strategy in self.strategies:
                self.votes.setdefault(vote.symbol, {})[vote.strategy] = (vote.direction,
                                                                         vote.confidence)
        for carried_record in carried.trade_records:
            record = self.records[carried_record.strategy] = TradeRecord()
            record.wins, record.losses = carried_record.wins, carried_record.losses
            record.win_sum, record.loss_sum = carried_record.win_sum, carried_record.loss_sum
        return self.on_taken_over(carried)

    def on_taken_over(self, state):
        """Orders a live run takes over are in flight for their sleeve until they fill or
        end (bracket legs excepted, as for orders of the run itself)."""
        for order in state.orders:
            if order.leg_of:
                continue
            key = (order.strategy, order.symbol)
            remaining = order.remaining if order.side == BUY else -order.remaining
            self.open_orders[order.client_order_id] = (key, remaining)
            self.pending[key] = self.pending.get(key, ZERO) + remaining
        return NOTHING

    def on_valued(self, valued: PortfolioValued):
        self.equity = valued.equity
        return NOTHING
