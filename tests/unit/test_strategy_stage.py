"""The strategy stage: dispatch in config order, failures, control toggles, determinism."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from agents.context import Context
from agents.strategy import StrategyStage
from schemas.control import StrategyDisabled, StrategyEnabled
from schemas.market import Bar
from schemas.signals import FLAT, LONG, SignalGenerated, StrategyFailed
from strategies import SmaCross, SmaCrossParams, StrategyParams
from tests.factories import bars_from_closes, header


class EveryBarParams(StrategyParams, frozen=True, kw_only=True):
    pass


class AlternateEveryBar:
    """LONG, FLAT, LONG, ...: a signal on every bar, to observe dispatch."""

    name = "alternate"
    Params = EveryBarParams

    def __init__(self, params):
        self.direction = FLAT

    def on_bar(self, bar):
        self.direction = LONG if self.direction == FLAT else FLAT
        return self.direction, 0.5


class Explodes:
    """Raises on every bar, like a plugin with a bug."""

    name = "explodes"
    Params = EveryBarParams

    def __init__(self, params):
        pass

    def on_bar(self, bar):
        raise ZeroDivisionError("float division by zero")


class ReturnsGarbage:
    """Returns a direction outside LONG/FLAT/SHORT."""

    name = "garbage"
    Params = EveryBarParams

    def __init__(self, params):
        pass

    def on_bar(self, bar):
        return 2, 0.5


def make_stage(*classes, run_id="run-1", **options) -> StrategyStage:
    config = [(cls.name, cls, EveryBarParams()) for cls in classes]
    return StrategyStage(Context(run_id, "strategy"), config, **options)


def control(event_type, strategy: str):
    return event_type(**header(producer="operator"), strategy=strategy)


def test_on_bar_when_strategy_raises_then_strategy_failed_and_next_strategy_still_signals():
    stage = make_stage(Explodes, AlternateEveryBar)
    bar = bars_from_closes([100.0])[0]
    failed, signal = stage.on_bar(bar)
    assert isinstance(failed, StrategyFailed)
    assert (failed.strategy, failed.symbol) == ("explodes", "AAA")
    assert failed.error == "ZeroDivisionError: float division by zero"
    assert isinstance(signal, SignalGenerated)
    assert (signal.strategy, signal.direction, signal.confidence) == ("alternate", LONG, 0.5)
    assert signal.price == 100.0
    assert failed.event_id != signal.event_id


def test_on_bar_when_signal_then_header_chains_to_the_bar():
    stage = make_stage(AlternateEveryBar)
    bar = bars_from_closes([100.0])[0]
    (signal,) = stage.on_bar(bar)
    assert signal.causation_id == bar.event_id
    assert signal.correlation_id == bar.correlation_id
    assert (signal.ts_event, signal.ts_init) == (bar.ts_event, bar.ts_init)
    assert (signal.producer, signal.run_id) == ("strategy", "run-1")


def test_on_bar_when_target_malformed_then_strategy_failed_names_the_problem():
    stage = make_stage(ReturnsGarbage)
    (failed,) = stage.on_bar(bars_from_closes([100.0])[0])
    assert isinstance(failed, StrategyFailed)
    assert failed.error.startswith("ValueError: direction must be LONG (1), FLAT (0) or SHORT")


def test_on_bar_when_no_strategy_changes_target_then_nothing():
    stage = StrategyStage(Context("run-1", "strategy"),
                          [("sma", SmaCross, SmaCrossParams(fast=2, slow=3))])
    assert all(stage.on_bar(bar) == () for bar in bars_from_closes([10.0] * 10))


def test_on_bar_when_strategy_disabled_then_it_emits_nothing_until_enabled():
    stage = make_stage(AlternateEveryBar, Explodes)
    bars = bars_from_closes([100.0, 101.0, 102.0])
    assert stage.routes()[StrategyDisabled](control(StrategyDisabled, "alternate")) == ()
    out = stage.on_bar(bars[0])
    assert [e.strategy for e in out] == ["explodes"]
    stage.routes()[StrategyEnabled](control(StrategyEnabled, "alternate"))
    out = stage.on_bar(bars[1])
    assert [e.strategy for e in out] == ["alternate", "explodes"]
    # Disabled, it was not called on bar 0, so bar 1 is its first bar: LONG.
    assert out[0].direction == LONG


class RefusesSymbol:
    """Its constructor raises, like a plugin that cannot handle a symbol."""

    name = "refuses"
    Params = EveryBarParams

    def __init__(self, params):
        raise KeyError("no tick size for AAA")


def test_on_bar_when_constructor_raises_then_strategy_failed_and_others_go_on():
    failed, signal = make_stage(RefusesSymbol, AlternateEveryBar).on_bar(
        bars_from_closes([100.0])[0])
    assert (failed.strategy, failed.error) == ("refuses", "KeyError: 'no tick size for AAA'")
    assert signal.strategy == "alternate"


def test_on_bar_when_unknown_strategy_disabled_then_ignored():
    stage = make_stage(AlternateEveryBar)
    stage.on_disabled(control(StrategyDisabled, "someone_elses"))
    assert len(stage.on_bar(bars_from_closes([100.0])[0])) == 1


def test_on_bar_when_several_symbols_then_each_has_its_own_instance():
    stage = make_stage(AlternateEveryBar)
    aaa = bars_from_closes([1.0, 2.0], symbol="AAA")
    bbb = bars_from_closes([1.0], symbol="BBB")
    assert stage.on_bar(aaa[0])[0].direction == LONG
    assert stage.on_bar(bbb[0])[0].direction == LONG   # fresh instance for BBB
    assert stage.on_bar(aaa[1])[0].direction == FLAT


def replay(run_id: str) -> list[bytes]:
    """A sma_cross and a failing strategy over two interleaved symbols, encoded."""
    rng = np.random.default_rng(11)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, size=(2, 400)), axis=1))
    bars_a = bars_from_closes(closes[0].tolist(), symbol="AAA")
    bars_b = bars_from_closes(closes[1].tolist(), symbol="BBB")
    stage = StrategyStage(Context(run_id, "strategy"),
                          [("fast_cross", SmaCross, SmaCrossParams(fast=3, slow=8)),
                           ("explodes", Explodes, EveryBarParams())],
                          with_volatility=True)
    encode = msgspec.json.Encoder().encode
    out = []
    for bar_a, bar_b in zip(bars_a, bars_b):
        out.extend(encode(e) for e in stage.on_bar(bar_a))
        out.extend(encode(e) for e in stage.on_bar(bar_b))
    return out


def test_replay_when_run_twice_then_identical_bytes_and_unique_ids():
    first, second = replay("run-7"), replay("run-7")
    assert first == second
    ids = [msgspec.json.decode(raw)["event_id"] for raw in first]
    assert len(ids) == len(set(ids))
    assert sum(b'"SignalGenerated"' in raw for raw in first) > 10


def test_replay_when_run_id_differs_then_ids_differ():
    ids_a = {msgspec.json.decode(raw)["event_id"] for raw in replay("run-7")}
    ids_b = {msgspec.json.decode(raw)["event_id"] for raw in replay("run-8")}
    assert not ids_a & ids_b


def test_on_bar_when_with_volatility_then_signal_carries_log_return_std():
    closes = [100.0, 101.0, 99.5, 100.5, 102.0, 101.0]
    stage = make_stage(AlternateEveryBar, with_volatility=True, volatility_window=3)
    signals = [stage.on_bar(bar)[0] for bar in bars_from_closes(closes)]
    assert [s.volatility for s in signals[:3]] == [0.0, 0.0, 0.0]   # 3 returns need 4 bars
    expected = np.std(np.diff(np.log(closes[2:6])), ddof=1)
    assert signals[5].volatility == pytest.approx(expected, rel=1e-9)


def test_on_bar_when_without_volatility_then_zero():
    stage = make_stage(AlternateEveryBar)
    signals = [stage.on_bar(bar)[0] for bar in bars_from_closes([100.0, 110.0, 90.0, 100.0])]
    assert {s.volatility for s in signals} == {0.0}


def test_stage_when_same_name_configured_twice_then_value_error():
    config = [("x", AlternateEveryBar, EveryBarParams()), ("x", Explodes, EveryBarParams())]
    with pytest.raises(ValueError, match="'x' is configured twice"):
        StrategyStage(Context("r", "strategy"), config)


def test_routes_when_asked_then_bar_strategy_control_and_carry_over_handled_and_finish_empty():
    from schemas.carryover import StateCarriedOver

    stage = make_stage(AlternateEveryBar)
    assert set(stage.routes()) == {Bar, StrategyEnabled, StrategyDisabled, StateCarriedOver}
    assert stage.name == "strategy"
    assert stage.finish(None) == ()
