"""The risk engine's fast paths agree with its per-symbol reference computations.

Gross notional must match exactly; VaR and CVaR may differ only in the last bits (the
fast path sums the scenario P&L over symbols in BLAS order).
"""
from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas as s
from agents.context import Context
from risk.engine import RiskStage
from risk.history import MarkHistory
from risk.limits import RiskLimits
from risk.proposal import ProposedOrder
from risk.var import held_scenario_pnl, scenario_pnl
from tests import factories as f

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def reference_tail(order: ProposedOrder) -> tuple[float, float]:
    """tail_risk computed symbol by symbol, as before the fast path existed."""
    from risk.var import var_cvar

    exposures = {sym: float(q * order.price_of(sym)) for sym, q in order.post_trade.items() if q}
    pnl = scenario_pnl(exposures, order.book.history, order.limits.var_min_history)
    var, cvar = var_cvar(pnl, order.limits.var_confidence)
    equity = float(order.book.equity)
    return var / equity, cvar / equity


def test_window_when_ring_wrapped_then_newest_returns_oldest_first():
    history = MarkHistory(lookback=4)
    closes = [100.0, 110.0, 99.0, 104.0, 101.0, 120.0, 90.0]
    for close in closes:
        history.record_close("AAA", close)
    returns = [b / a - 1.0 for a, b in zip(closes, closes[1:])]
    assert history.count("AAA") == 4
    assert history.window("AAA", 3).tolist() == returns[-3:]
    history.resize(2)
    assert history.count("AAA") == 2
    assert history.window("AAA", 2).tolist() == returns[-2:]


def test_record_close_when_many_symbols_then_rows_grow_and_keep_history():
    history = MarkHistory(lookback=3)
    names = [f"S{i:03d}" for i in range(150)]
    for close in (10.0, 11.0, 12.1):
        for name in names:
            history.record_close(name, close)
    assert history.row_count == 150
    assert history.window("S000", 2) == pytest.approx([0.1, 0.1])
    assert history.window("S149", 2) == pytest.approx([0.1, 0.1])


def test_held_scenario_pnl_when_rows_out_of_step_then_matches_reference():
    history = MarkHistory(lookback=5)
    rng = np.random.default_rng(3)
    for step in range(9):
        for i, symbol in enumerate(SYMBOLS):
            if step < 8 or i < 2:   # the last round reaches only the first two symbols
                history.record_close(symbol, float(100 + rng.integers(-5, 5)))
    exposures = {"AAA": 1000.0, "BBB": -500.0, "CCC": 250.0, "DDD": 75.0}
    by_row = np.zeros(history.row_count)
    for symbol, notional in exposures.items():
        by_row[history.rows[symbol]] = notional
    fast = held_scenario_pnl(by_row, history, 2)
    assert fast == pytest.approx(scenario_pnl(exposures, history, 2), rel=1e-12, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lookback=st.integers(2, 12),
       symbols=st.integers(1, 9), rounds=st.integers(1, 30), data=st.data())
def test_held_scenario_pnl_when_any_alignment_then_bit_for_bit_the_grouped_sum(
        seed, lookback, symbols, rounds, data):
    """The one-gather paths (rows in step, or two groups one return apart) add exactly
    what the product per group of rows adds, so a replay's VaR never moves by a bit."""
    from risk.var import _grouped_pnl
    rng = np.random.default_rng(seed)
    names = [f"S{i}" for i in range(symbols)]
    history = MarkHistory(lookback=lookback)
    for _ in range(rounds):
        for name in names:   # cent prices, so flat returns (zeros) happen too
            history.record_close(name, float(rng.integers(9_900, 10_100)) / 100)
    for name in names[:data.draw(st.integers(0, symbols))]:   # a timestamp half done
        history.record_close(name, float(rng.integers(9_900, 10_100)) / 100)
    for name in data.draw(st.lists(st.sampled_from(names), max_size=3)):   # out of order
        history.record_close(name, float(rng.integers(9_900, 10_100)) / 100)
    exposure = np.zeros(history.row_count)
    for row in data.draw(st.lists(st.integers(0, symbols - 1), max_size=symbols)):
        exposure[row] = float(rng.choice([-1, 1]) * rng.integers(1, 10**7)) / 100
    (rows,) = exposure.nonzero()
    fast = held_scenario_pnl(exposure, history, 2)
    seen = history.seen(rows)
    if not len(rows) or fast is None:
        return
    n = min(int(seen.min()), lookback)
    grouped = _grouped_pnl(rows, exposure.take(rows), history, seen, int(seen.min()),
                           int(seen.max()), n)
    assert np.ascontiguousarray(fast).tobytes() == np.ascontiguousarray(grouped).tobytes()


def test_held_scenario_pnl_when_history_short_then_defers_to_reference():
    history = MarkHistory(lookback=5)
    for close in (100.0, 101.0):
        history.record_close("AAA", close)
    assert held_scenario_pnl(np.array([1000.0]), history, 3) is None


# Quantities and prices that stay on the fast path, and some that do not: fractional or
# finely scaled quantities, closes off the micro-unit grid, a missing or zero close.
quantities = st.one_of(st.integers(1, 5000).map(Decimal),
                       st.sampled_from([Decimal("0.5"), Decimal("12.0000000"), Decimal("1E+3")]))
closes = st.one_of(st.integers(1, 50_000).map(lambda c: c / 100),
                   st.floats(min_value=0.5, max_value=500.0), st.just(0.0))
events = st.lists(st.one_of(
    st.tuples(st.just("bar"), st.sampled_from(SYMBOLS), closes),
    st.tuples(st.just("fill"), st.sampled_from(SYMBOLS), st.sampled_from(("BUY", "SELL")),
              quantities),
    st.tuples(st.just("order"), st.sampled_from(SYMBOLS), st.sampled_from(("BUY", "SELL")),
              quantities, st.booleans()),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(events, st.sampled_from(SYMBOLS), st.sampled_from(("BUY", "SELL")), quantities)
def test_figures_when_any_book_then_fast_paths_match_reference(history, symbol, side, quantity):
    stage = RiskStage(Context(f.RUN, "risk"), RiskLimits(var_min_history=3), Decimal("1000000"))
    routes = stage.routes()
    for name in SYMBOLS:   # enough history for a tail
        for bar in f.bars_from_closes([100.0, 101.0, 99.5, 100.25], name,
                                      start=f.T0 - 10 * f.MINUTE, step=f.MINUTE):
            routes[s.Bar](bar)
    for step, event in enumerate(history):
        head = f.header(f.T0 + step, "test", event_id=f"v{step}")
        if event[0] == "bar":
            routes[s.Bar](s.Bar(**head, symbol=event[1], open=event[2], high=event[2],
                                low=event[2], close=event[2], volume=1.0))
        elif event[0] == "fill":
            routes[s.FillExecuted](f.fill(event[1], event[2], str(event[3]), ts=f.T0 + step))
        else:
            limit = {"order_type": "LIMIT", "limit_price": Decimal("99.125")} if event[4] else {}
            routes[s.SubmitOrder](f.submit_order(event[1], event[2], str(event[3]),
                                                 ts=f.T0 + step, **limit))
    request = f.submit_order(symbol, side, str(quantity), ts=f.T0 + 100)
    order = ProposedOrder(request, stage._book, stage._trading, stage.limits)
    reference = ProposedOrder(request, stage._book, stage._trading, stage.limits)
    try:
        expected = reference._gross_by_symbol()
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            _ = order.gross_notional
    else:
        assert order.gross_notional == expected
    try:
        expected_tail = reference_tail(reference)
    except Exception as exc:  # noqa: BLE001 - the fast path must raise the same
        with pytest.raises(type(exc), match=re.escape(str(exc))):
            _ = order.tail_risk
    else:
        assert order.tail_risk == pytest.approx(expected_tail, rel=1e-12, abs=1e-15)
