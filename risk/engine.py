"""RiskStage: the fail-closed pre-trade risk engine as a pure pipeline stage.

Every SubmitOrder gets exactly one decision (OrderApproved + PlaceOrder, or OrderDenied)
listing every check. Halts (drawdown, daily loss, kill switch, a live start's
reconciliation) are TradingStateChanged events and are lifted only by an explicit event:
HaltReleased, KillSwitchReleased, ReconciliationAcknowledged, or - for the daily-loss
REDUCING state - the first valuation of a new New York trading date, which itself emits a
TradingStateChanged saying so.

The stage assumes one ordered stream per account (DESIGN rule 4): it does not filter
events by account, and its outputs carry `ctx.account`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from agents.context import Context
from agents.stage import NOTHING, Handler
from risk.checks import NS, ProposedOrder, ratio_text, run_checks
from risk.limits import RiskLimits, with_limit
from risk.state import (
    DAILY_LOSS,
    DRAWDOWN,
    KILL_SWITCH,
    RECONCILIATION,
    AccountBook,
    Halt,
    TradingDay,
    TradingState,
    signed,
)
from schemas.broker import RECONCILED_HALTED, BrokerStateAdopted, ReconciliationCompleted
from schemas.carryover import StateCarriedOver
from schemas.control import (
    HaltReleased, KillSwitchEngaged, KillSwitchReleased, LimitChanged,
    ReconciliationAcknowledged,
)
from schemas.fills import FillExecuted
from schemas.header import Event
from schemas.market import Bar
from schemas.orders import OrderCanceled, OrderExpired, OrderRejected, PlaceOrder, SubmitOrder
from schemas.portfolio import PortfolioValued
from schemas.risk import ACTIVE, CheckResult, OrderApproved, OrderDenied, TradingStateChanged

# The order's material terms: every SubmitOrder field that is not part of the header.
# _decide copies each into the PlaceOrder by name (a test holds it to this list).
TERMS = tuple(f for f in SubmitOrder.__struct_fields__ if f not in Event.__struct_fields__)
# Header index of the start-of-run kill-switch announcement; the decision uses 0 and the
# PlaceOrder 1, so this never collides with them.
_START_INDEX = 2
# Halts that HaltReleased may lift; the kill switch and reconciliation need their own.
_RELEASABLE = (DRAWDOWN, DAILY_LOSS)
# Halts a live run that continues the previous one keeps (a daily-loss halt only on the
# same trading day; reconciliation happens again at every start).
CARRIED_HALTS = (KILL_SWITCH, DRAWDOWN, DAILY_LOSS)


class RiskStage:
    """Pre-trade risk for one account: checks each order request, tracks halts."""

    name = "risk"

    def __init__(self, ctx: Context, limits: RiskLimits, initial_equity: Decimal) -> None:
        self._ctx = ctx
        self._limits = limits
        self._book = AccountBook(Decimal(initial_equity), limits.var_lookback)
        self._trading = TradingState()
        self._day = TradingDay()
        # Drawdown acknowledged by the last accepted release: the halt re-arms only when the
        # drawdown deepens by another max_drawdown or first recovers below the limit, so a
        # release is not undone by the very next valuation.
        self._drawdown_ack: Decimal | None = None
        self._announce_start = limits.kill_switch
        if limits.kill_switch:
            self._trading.engage(Halt(KILL_SWITCH, "engaged at start by configuration"))
        self._thresholds()

    @property
    def limits(self) -> RiskLimits:
        """The limits in force (after any LimitChanged)."""
        return self._limits

    @property
    def trading_state(self) -> str:
        """ACTIVE, REDUCING or HALTED."""
        return self._trading.state

    @property
    def halts(self) -> tuple[Halt, ...]:
        """The halt reasons engaged now, each with its detail and earliest release."""
        return tuple(self._trading.halts.values())

    @property
    def trading_day(self) -> TradingDay:
        """The trading day of the latest valuation (read only: for a live run's carry-over)."""
        return self._day

    @property
    def drawdown_ack(self) -> Decimal | None:
        """The drawdown an operator's release acknowledged, while it still holds."""
        return self._drawdown_ack

    @property
    def approvals(self) -> tuple[int, ...]:
        """The times of the approvals the order-rate check still counts."""
        return tuple(self._book.approvals)

    @property
    def history(self):
        """Marks and recent returns per symbol (read only: for a live run's carry-over)."""
        return self._book.history

    def position(self, symbol: str) -> Decimal:
        """The engine's own net position in `symbol`, from fills."""
        return self._book.positions.get(symbol, Decimal(0))

    def routes(self) -> Mapping[type, Handler]:
        """Input event type -> handler."""
        return {
            # Straight to the history: the hot path of a backtest, a hop saved is felt.
            Bar: self._book.history.record_bar,
            PortfolioValued: self._on_valuation,
            FillExecuted: self._on_fill,
            OrderRejected: self._on_order_done,
            OrderCanceled: self._on_order_done,
            OrderExpired: self._on_order_done,
            KillSwitchEngaged: self._on_kill_switch_engaged,
            KillSwitchReleased: self._on_kill_switch_released,
            HaltReleased: self._on_halt_released,
            LimitChanged: self._on_limit_changed,
            ReconciliationCompleted: self._on_reconciliation,
            ReconciliationAcknowledged: self._on_reconciliation_acknowledged,
            StateCarriedOver: self._on_carried,
            BrokerStateAdopted: self._on_orders_taken_over,
            SubmitOrder: self._on_order_request,
        }

    def finish(self, last_event: Event | None) -> Sequence[Event]:
        """Nothing is pending at the end of a stream: open orders are execution's."""
        return NOTHING

    # -- market data: the hot path of a backtest, no output ----------------------------
    # Bars go to MarkHistory.record_bar (see routes): the mark, the return history and
    # the time of the first bar, which stands for the valuation time until one arrives.

    # -- account ---------------------------------------------------------------------------

    def _on_valuation(self, valued: PortfolioValued) -> Sequence[Event]:
        out = self._begin(valued)
        book = self._book
        book.equity = valued.equity
        book.drawdown = valued.drawdown
        book.valuation_ts = valued.ts_event
        if not (valued.equity.is_finite() and valued.drawdown.is_finite()):
            # Kept as seen: every ratio on a NaN equity raises, so orders are denied
            # (fail closed) until a readable valuation arrives.
            return out
        if self._day.roll(valued.ts_event, valued.equity) and DAILY_LOSS in self._trading.halts:
            out.append(self._lift(valued, len(out), (DAILY_LOSS,), "new trading day"))
        self._check_drawdown(valued, out)
        self._check_daily_loss(valued, out)
        return out

    def _check_drawdown(self, valued: PortfolioValued, out: list[Event]) -> None:
        drawdown, limit = valued.drawdown, self._max_drawdown
        if drawdown < limit:
            self._drawdown_ack = None
            return
        if DRAWDOWN in self._trading.halts:
            return
        if self._drawdown_ack is not None and drawdown < self._drawdown_ack + limit:
            return
        until = valued.ts_event + self._limits.halt_cooldown_s * NS
        detail = (f"drawdown {ratio_text(drawdown)} >= max_drawdown {self._limits.max_drawdown}"
                  f" (equity {valued.equity}, high-water mark {valued.high_water_mark})")
        out.append(self._engage(valued, len(out), Halt(DRAWDOWN, detail, until)))

    def _check_daily_loss(self, valued: PortfolioValued, out: list[Event]) -> None:
        day = self._day
        loss = day.loss(valued.equity)
        if day.loss_breached or loss < self._max_daily_loss:
            return
        day.loss_breached = True
        detail = (f"daily loss {ratio_text(loss)} >= max_daily_loss {self._limits.max_daily_loss}"
                  f" (equity {valued.equity}, day start {day.start_equity}, {day.date})")
        out.append(self._engage(valued, len(out), Halt(DAILY_LOSS, detail)))

    def _on_fill(self, fill: FillExecuted) -> Sequence[Event]:
        out = self._begin(fill)
        self._book.apply_fill(fill.client_order_id, fill.side, fill.quantity, fill.price,
                              fill.symbol, fill.leaves_quantity)
        return out

    def _on_order_done(self, update: OrderRejected | OrderCanceled | OrderExpired
                       ) -> Sequence[Event]:
        out = self._begin(update)
        self._book.close_order(update.client_order_id)
        return out

    # -- operator control ------------------------------------------------------------------

    def _on_kill_switch_engaged(self, command: KillSwitchEngaged) -> Sequence[Event]:
        out = self._begin(command)
        detail = f"by {command.operator or 'operator'}: {command.reason}"
        out.append(self._engage(command, len(out), Halt(KILL_SWITCH, detail)))
        return out

    def _on_kill_switch_released(self, command: KillSwitchReleased) -> Sequence[Event]:
        out = self._begin(command)
        out.append(self._lift(command, len(out), (KILL_SWITCH,),
                              f"kill switch released by {command.operator or 'operator'}: "
                              f"{command.reason}"))
        return out

    def _on_halt_released(self, command: HaltReleased) -> Sequence[Event]:
        out = self._begin(command)
        now = command.ts_event
        halts = [self._trading.halts[r] for r in _RELEASABLE if r in self._trading.halts]
        due = tuple(h.reason for h in halts if now >= h.until_ts)
        cooling = [h.until_ts for h in halts if now < h.until_ts]
        if DRAWDOWN in due:
            self._drawdown_ack = self._book.drawdown
        if cooling:
            until = max(cooling)
            reason = f"release refused: cooldown until {_iso(until)}"
            if due:
                reason += f"; lifted {', '.join(due)}"
            out.append(self._lift(command, len(out), due, reason, until_ts=until,
                                  name_the_rest=False))
        else:
            reason = f"released by {command.operator or 'operator'}: {command.reason}"
            if not due:
                reason = f"release: no drawdown or daily-loss halt to lift ({reason})"
            out.append(self._lift(command, len(out), due, reason))
        return out

    def _on_reconciliation(self, done: ReconciliationCompleted) -> Sequence[Event]:
        """A live start that found differences with the broker halts, under a reason of
        its own, until the operator acknowledges them."""
        out = self._begin(done)
        if done.resolution == RECONCILED_HALTED:
            detail = (f"{done.differences} difference(s) with the broker at start; until "
                      f"acknowledged (firetape control ack-reconciliation)")
            out.append(self._engage(done, len(out), Halt(RECONCILIATION, detail)))
        return out

    def _on_orders_taken_over(self, state: StateCarriedOver | BrokerStateAdopted
                              ) -> Sequence[Event]:
        """Orders still working at the broker that a live run takes over (an earlier
        run's, or adopted) count as open exposure until they fill or end, like the ones
        this engine approved. Bracket legs are not counted, as they never were."""
        out = self._begin(state)
        for order in state.orders:
            if not order.leg_of:
                self._book.add_open_order(order.client_order_id, order.symbol,
                                          signed(order.side, order.remaining))
        return out

    def _on_carried(self, carried: StateCarriedOver) -> Sequence[Event]:
        """A live run that continues the previous one, taken before the run's first
        valuation: its working orders count as open exposure; the halts it stopped under
        stay engaged (an operator's kill switch is not lifted by a restart); on the same
        trading day the day's opening equity and loss limit carry on (a restart hands out
        no fresh daily-loss budget); a released drawdown stays released; and the VaR
        keeps the return histories instead of denying new exposure until bars refill
        them."""
        out = self._on_orders_taken_over(carried)
        day = carried.day
        same_day = day is not None and self._day.resume(
            carried.ts_event, date.fromisoformat(day.date), day.start_equity,
            day.loss_breached)
        self._drawdown_ack = carried.drawdown_ack
        self._book.approvals.extend(sorted(carried.approvals))   # the submit rate goes on
        history = self._book.history
        for carried_returns in carried.histories:
            history.seed(carried_returns.symbol, carried_returns.mark, carried_returns.returns)
        for halt in carried.halts:
            if halt.reason == DAILY_LOSS and not same_day:
                continue              # that day is over: its halt would lift at once
            if halt.reason in CARRIED_HALTS:
                out.append(self._engage(carried, len(out), Halt(
                    halt.reason, f"carried over from {carried.from_run}: {halt.detail}",
                    halt.until_ts)))
        return out

    def _on_reconciliation_acknowledged(self, command: ReconciliationAcknowledged
                                        ) -> Sequence[Event]:
        out = self._begin(command)
        out.append(self._lift(command, len(out), (RECONCILIATION,),
                              f"reconciliation acknowledged by "
                              f"{command.operator or 'operator'}: {command.reason}"))
        return out

    def _on_limit_changed(self, command: LimitChanged) -> Sequence[Event]:
        """Replace one limit. An unknown name or invalid value is ignored: no event, the old
        value stays (the control topic is the operator's record of what was asked)."""
        out = self._begin(command)
        try:
            limits = with_limit(self._limits, command.name, command.value)
        except ValueError:
            return out
        if limits.var_lookback != self._limits.var_lookback:
            self._book.resize_history(limits.var_lookback)
        self._limits = limits
        self._thresholds()
        if command.name == "kill_switch":
            who = command.operator or "operator"
            detail = f"kill_switch limit set to {limits.kill_switch} by {who}"
            if limits.kill_switch:
                out.append(self._engage(command, len(out), Halt(KILL_SWITCH, detail)))
            else:
                out.append(self._lift(command, len(out), (KILL_SWITCH,), detail))
        return out

    # -- order requests --------------------------------------------------------------------

    def _on_order_request(self, request: SubmitOrder) -> Sequence[Event]:
        out = self._begin(request, _START_INDEX)
        try:
            out.extend(self._decide(request))
        except Exception as exc:  # noqa: BLE001 - the request still gets its one decision
            failure = CheckResult("engine", False, "error", "n/a",
                                  f"risk engine raised: {type(exc).__name__}: {exc}")
            out.append(self._denial(request, (failure,)))
        return out

    def _decide(self, request: SubmitOrder) -> list[Event]:
        proposal = ProposedOrder(request, self._book, self._trading, self._limits)
        checks = run_checks(proposal, self._limits)
        if not all(check.passed for check in checks):
            return [self._denial(request, checks)]
        ctx = self._ctx
        # Header keywords written out (see Context.event_id): the same fields as
        # ctx.header(request, index) gives.
        ts_event, ts_init = request.ts_event, request.ts_init
        correlation_id, causation_id = request.correlation_id, request.event_id
        approved = OrderApproved(
            event_id=ctx.event_id(request, 0), ts_event=ts_event, ts_init=ts_init,
            correlation_id=correlation_id, causation_id=causation_id, producer=ctx.producer,
            run_id=ctx.run_id, client_order_id=request.client_order_id,
            account=request.account, strategy=request.strategy, symbol=request.symbol,
            side=request.side, quantity=request.quantity, trading_state=self._trading.state,
            checks=checks)
        # Every term of the request (TERMS), written out.
        place = PlaceOrder(
            event_id=ctx.event_id(request, 1), ts_event=ts_event, ts_init=ts_init,
            correlation_id=correlation_id, causation_id=causation_id, producer=ctx.producer,
            run_id=ctx.run_id, client_order_id=request.client_order_id,
            account=request.account, strategy=request.strategy, symbol=request.symbol,
            side=request.side, quantity=request.quantity, order_type=request.order_type,
            limit_price=request.limit_price, stop_price=request.stop_price,
            time_in_force=request.time_in_force, security_type=request.security_type,
            ref_price=request.ref_price, reduce_only=request.reduce_only,
            stop_loss=request.stop_loss, take_profit=request.take_profit,
            parent_id=request.parent_id, account_type=request.account_type,
            decision_id=approved.event_id)
        # State moves only once both events exist, so a failure above leaves it untouched.
        self._book.add_open_order(request.client_order_id, request.symbol, proposal.delta)
        self._book.approvals.append(request.ts_event)
        return [approved, place]

    def _denial(self, request: SubmitOrder, checks: tuple[CheckResult, ...]) -> OrderDenied:
        ctx = self._ctx
        return OrderDenied(
            event_id=ctx.event_id(request, 0), ts_event=request.ts_event,
            ts_init=request.ts_init, correlation_id=request.correlation_id,
            causation_id=request.event_id, producer=ctx.producer, run_id=ctx.run_id,
            client_order_id=request.client_order_id,
            account=request.account, strategy=request.strategy, symbol=request.symbol,
            side=request.side, quantity=request.quantity, trading_state=self._trading.state,
            checks=checks, reasons=tuple(check.reason for check in checks if not check.passed))

    # -- helpers ---------------------------------------------------------------------------

    def _begin(self, cause: Event, announce_index: int = 0) -> list[Event]:
        """Common start of every non-bar handler: fix the initial valuation time and, once,
        announce a kill switch engaged by configuration (a halt is always an event)."""
        if self._book.valuation_ts is None:
            self._book.valuation_ts = cause.ts_event
        if not self._announce_start:
            return []
        self._announce_start = False
        return [self._changed(cause, announce_index, ACTIVE,
                              "kill_switch: engaged at start by configuration")]

    def _engage(self, cause: Event, index: int, halt: Halt) -> TradingStateChanged:
        previous = self._trading.state
        self._trading.engage(halt)
        return self._changed(cause, index, previous, f"{halt.reason}: {halt.detail}",
                             halt.until_ts)

    def _lift(self, cause: Event, index: int, reasons: Sequence[str], why: str,
              until_ts: int = 0, name_the_rest: bool = True) -> TradingStateChanged:
        previous = self._trading.state
        lifted = [reason for reason in reasons if self._trading.lift(reason)]
        if reasons and not lifted:
            why += f" ({', '.join(reasons)} was not engaged)"
        if name_the_rest and self._trading.halts:
            why += f"; still engaged: {self._trading.describe()}"
        return self._changed(cause, index, previous, why, until_ts)

    def _changed(self, cause: Event, index: int, previous: str, reason: str,
                 until_ts: int = 0) -> TradingStateChanged:
        return TradingStateChanged(**self._ctx.header(cause, index), account=self._ctx.account,
                                   state=self._trading.state, previous=previous, reason=reason,
                                   until_ts=until_ts)

    def _thresholds(self) -> None:
        # Exact copies of the float fractions, compared with the portfolio's Decimals.
        self._max_drawdown = Decimal(repr(self._limits.max_drawdown))
        self._max_daily_loss = Decimal(repr(self._limits.max_daily_loss))


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // NS, UTC).isoformat()
