"""The strategy stage: bars in, each enabled strategy's new targets (or failures) out."""
from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence

from agents.context import Context
from agents.stage import NOTHING, Handler
from schemas.carryover import StateCarriedOver
from schemas.control import StrategyDisabled, StrategyEnabled
from schemas.header import Event
from schemas.market import Bar
from schemas.signals import FLAT, LONG, SHORT, SignalGenerated, StrategyFailed
from strategies.indicators.volatility import RollingVolatility

_DIRECTIONS = (LONG, FLAT, SHORT)


class _Slot:
    """One configured strategy: its name, class, params and per-symbol instances."""

    __slots__ = ("name", "cls", "params", "instances")

    def __init__(self, name: str, cls: type, params: object) -> None:
        self.name = name
        self.cls = cls
        self.params = params
        self.instances: dict[str, object] = {}


class StrategyStage:
    """Runs the configured strategies, in config order, on every bar of every symbol.

    Each strategy gets one instance per symbol, made on the symbol's first bar. A target
    change becomes a SignalGenerated; an exception (or a malformed target) becomes a
    StrategyFailed for that strategy and bar, and the other strategies still run. The
    n-th event made for a bar gets header index n, so ids are deterministic and unique.

    Control: StrategyDisabled stops calling that strategy, StrategyEnabled resumes it
    (every configured strategy starts enabled; names this stage does not run are
    ignored, another strategy stage may run them). A disabled strategy keeps its
    instances, so on resumption its idea of its current target still matches the last
    signal downstream saw; its indicators skip the bars it missed.

    With `with_volatility`, a per-symbol RollingVolatility of log returns over
    `volatility_window` bars goes into SignalGenerated.volatility (0.0 until ready).
    """

    name = "strategy"

    def __init__(self, ctx: Context, strategies: Sequence[tuple[str, type, object]], *,
                 with_volatility: bool = False, volatility_window: int = 20) -> None:
        self._ctx = ctx
        self._slots: list[_Slot] = []
        seen: set[str] = set()
        for name, cls, params in strategies:
            if name in seen:
                raise ValueError(f"strategy name {name!r} is configured twice")
            seen.add(name)
            self._slots.append(_Slot(name, cls, params))
        self._disabled: set[str] = set()
        # Precomputed so a bar walks a plain list, not a filter over the config.
        self._active: list[_Slot] = list(self._slots)
        self._with_volatility = with_volatility
        self._volatility_window = volatility_window
        self._volatility: dict[str, RollingVolatility] = {}
        # symbol -> (slot, its instance's on_bar) for every active slot, once all exist
        # and no volatility is tracked: the fast path of on_bar
        self._runners: dict[str, tuple[tuple[_Slot, Callable], ...]] = {}

    def routes(self) -> Mapping[type, Handler]:
        """Bars drive the strategies; strategy on/off commands come from control."""
        return {Bar: self.on_bar, StrategyEnabled: self.on_enabled,
                StrategyDisabled: self.on_disabled, StateCarriedOver: self.on_carried}

    def finish(self, last_event: Event | None) -> Sequence[Event]:
        """Strategies hold no pending output at the end of a stream."""
        return NOTHING

    def on_bar(self, bar: Bar) -> Sequence[Event]:
        """Every enabled strategy's new target for this bar's symbol, or its failure."""
        runners = self._runners.get(bar.symbol)
        if runners is None:
            return self._on_bar(bar)
        # _on_bar for a symbol whose instances all exist: the same calls, in the same
        # order, without looking each instance up again (this runs once per bar).
        out: list[Event] | None = None
        for slot, run in runners:
            try:
                target = run(bar)
                if target is None:
                    continue
                direction, confidence = _checked(target)
            except Exception as exc:  # a plugin's bug must not stop the other strategies
                if out is None:
                    out = []
                out.append(self._failed(bar, len(out), slot, exc))
                continue
            if out is None:
                out = []
            out.append(self._signal(bar, len(out), slot, direction, confidence, 0.0))
        return NOTHING if out is None else out

    def _on_bar(self, bar: Bar) -> Sequence[Event]:
        symbol = bar.symbol
        volatility = 0.0
        if self._with_volatility:
            volatility = self._update_volatility(symbol, bar.close)
        out: list[Event] | None = None
        for slot in self._active:
            strategy = slot.instances.get(symbol)
            try:
                if strategy is None:
                    strategy = slot.instances[symbol] = slot.cls(slot.params)
                target = strategy.on_bar(bar)
                if target is None:
                    continue
                direction, confidence = _checked(target)
            except Exception as exc:  # a plugin's bug must not stop the other strategies
                if out is None:
                    out = []
                out.append(self._failed(bar, len(out), slot, exc))
                continue
            if out is None:
                out = []
            out.append(self._signal(bar, len(out), slot, direction, confidence, volatility))
        if not self._with_volatility and all(symbol in slot.instances for slot in self._active):
            self._runners[symbol] = tuple((slot, slot.instances[symbol].on_bar)
                                          for slot in self._active)
        return NOTHING if out is None else out

    def _signal(self, bar: Bar, index: int, slot: _Slot, direction: int, confidence: float,
                volatility: float) -> SignalGenerated:
        ctx = self._ctx   # header keywords written out (see Context.event_id)
        return SignalGenerated(event_id=ctx.event_id(bar, index), ts_event=bar.ts_event,
                               ts_init=bar.ts_init, correlation_id=bar.correlation_id,
                               causation_id=bar.event_id, producer=ctx.producer,
                               run_id=ctx.run_id, strategy=slot.name, symbol=bar.symbol,
                               direction=direction, confidence=confidence, price=bar.close,
                               volatility=volatility)

    def _failed(self, bar: Bar, index: int, slot: _Slot, exc: Exception) -> StrategyFailed:
        return StrategyFailed(**self._ctx.header(bar, index), strategy=slot.name,
                              symbol=bar.symbol, error=f"{type(exc).__name__}: {exc}")

    def on_enabled(self, event: StrategyEnabled) -> Sequence[Event]:
        """Resume calling the named strategy."""
        self._disabled.discard(event.strategy)
        self._refresh_active()
        return NOTHING

    def on_disabled(self, event: StrategyDisabled) -> Sequence[Event]:
        """Stop calling the named strategy: it emits nothing until enabled again."""
        self._disabled.add(event.strategy)
        self._refresh_active()
        return NOTHING

    # -- a live run that continues the previous one ------------------------------------
    def carried_state(self) -> bytes:
        """Everything the strategies know, pickled: each strategy's instance per symbol
        (indicators, and its idea of its current target), the disabled strategies and the
        volatility trackers. A live run that continues this one starts from it, so a
        restart neither waits for indicators to fill again nor forgets that a strategy is
        in a position (a fresh instance would think itself flat and skip the exit)."""
        return pickle.dumps(({slot.name: slot.instances for slot in self._slots},
                             sorted(self._disabled), self._volatility),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def on_carried(self, carried: StateCarriedOver) -> Sequence[Event]:
        """Start from `carried_state` of the previous run (empty: its strategy setup was
        not this one's, and the strategies start again from bars)."""
        if not carried.strategy_state:
            return NOTHING
        instances, disabled, volatility = pickle.loads(carried.strategy_state)
        for slot in self._slots:
            slot.instances = dict(instances.get(slot.name, {}))
        self._disabled = set(disabled)
        self._volatility = dict(volatility)
        self._refresh_active()
        return NOTHING

    def _refresh_active(self) -> None:
        self._active = [slot for slot in self._slots if slot.name not in self._disabled]
        self._runners.clear()

    def _update_volatility(self, symbol: str, close: float) -> float:
        tracker = self._volatility.get(symbol)
        if tracker is None:
            tracker = self._volatility[symbol] = RollingVolatility(self._volatility_window)
        value = tracker.update(close)
        return 0.0 if value is None else value


def _checked(target: object) -> tuple[int, float]:
    """A plugin's (direction, confidence), refused unless it is well-formed: downstream
    sizing trusts direction in {-1, 0, 1} and confidence in 0..1."""
    direction, confidence = target
    if direction not in _DIRECTIONS or isinstance(direction, bool):
        raise ValueError(f"direction must be LONG (1), FLAT (0) or SHORT (-1), got {direction!r}")
    confidence = float(confidence)
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be within 0..1, got {confidence!r}")
    return int(direction), confidence
