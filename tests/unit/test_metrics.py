"""Performance metrics against hand-computed values, and the degenerate cases."""
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import schemas as s
from firetape.report.frames import frames_from_events
from firetape.report.metrics import (
    equity_curve,
    performance,
    periods_per_year,
    strategy_pnl_curves,
)
from firetape.report.roundtrips import round_trips
from tests.factories import DAY, MINUTE, T0, bars_from_closes, fill, header
from topics import topic_of


def curve(values, step=DAY) -> pd.Series:
    return pd.Series(values, index=[T0 + i * step for i in range(len(values))], dtype=float)


def frames_of(*events):
    return frames_from_events((topic_of(type(e)), e, i) for i, e in enumerate(events))


def trips_with_pnl(*pnl) -> pd.DataFrame:
    return pd.DataFrame({"strategy": "s", "symbol": "AAA", "pnl": list(pnl),
                         "entry_ts": T0, "exit_ts": T0 + DAY, "quantity": 1.0,
                         "avg_entry": 1.0, "avg_exit": 1.0})


def test_performance_when_curve_rises_dips_and_recovers_then_return_and_drawdown_match_hand():
    equity = curve([100, 110, 99, 104.5, 121, 115])

    m = performance(equity, None, initial_equity=100.0)

    assert m["total_return"] == pytest.approx(0.15)
    assert m["max_drawdown"] == pytest.approx(0.10)            # 110 -> 99
    # Under water from the 110 peak (day 1) until 121 (day 4); the final dip lasts 1 day.
    assert m["max_drawdown_duration_days"] == pytest.approx(3.0)
    assert m["periods_per_year"] == pytest.approx(252.0)


def test_performance_when_returns_alternate_two_and_minus_one_percent_then_ratios_are_known():
    returns = [0.02, -0.01, 0.02, -0.01]
    equity = curve(100.0 * np.cumprod([1.0] + [1 + r for r in returns]))

    m = performance(equity, None, initial_equity=100.0)

    # mean 0.005, sample stdev sqrt(0.0003): sharpe = 0.005 / sqrt(0.0003) x sqrt(252).
    assert m["sharpe"] == pytest.approx(math.sqrt(21.0))
    # downside deviation sqrt((2 x 0.0001) / 4): sortino = sqrt(126).
    assert m["sortino"] == pytest.approx(math.sqrt(126.0))
    assert m["annual_volatility"] == pytest.approx(math.sqrt(0.0003 * 252))
    growth = 1.02 ** 2 * 0.99 ** 2
    assert m["cagr"] == pytest.approx(growth ** (252 / 4) - 1)
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.01)


def test_performance_when_equity_is_flat_then_ratios_are_none_and_nothing_warns():
    m = performance(curve([1000.0] * 10), None, initial_equity=1000.0)

    assert m["total_return"] == 0.0
    assert m["annual_volatility"] == 0.0
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_duration_days"] == 0.0
    assert (m["sharpe"], m["sortino"], m["calmar"]) == (None, None, None)


def test_performance_when_curve_is_empty_then_zero_returns_and_none_ratios():
    m = performance(pd.Series(dtype=float), None, initial_equity=1000.0)

    assert m["total_return"] == 0.0
    assert m["cagr"] is None
    assert m["sharpe"] is None
    assert m["trade_count"] == 0
    assert m["exposure"] == 0.0
    assert m["turnover"] == 0.0


def test_performance_when_no_trades_then_trade_stats_are_none_and_count_zero():
    m = performance(curve([100, 101, 102]), trips_with_pnl().iloc[0:0], initial_equity=100.0)

    assert (m["win_rate"], m["profit_factor"], m["avg_trade"]) == (None, None, None)
    assert m["trade_count"] == 0


def test_performance_when_trips_win_and_lose_then_win_rate_profit_factor_and_average():
    m = performance(curve([100, 101, 102]), trips_with_pnl(10.0, -5.0, 20.0),
                    initial_equity=100.0)

    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx(30.0 / 5.0)
    assert m["avg_trade"] == pytest.approx(25.0 / 3)
    assert m["trade_count"] == 3


def test_performance_when_only_winning_trades_then_profit_factor_is_none():
    m = performance(curve([100, 101]), trips_with_pnl(1.0, 2.0), initial_equity=100.0)

    assert m["profit_factor"] is None
    assert m["win_rate"] == 1.0


def test_performance_when_trips_overlap_then_exposure_is_their_union_over_the_span():
    trips = trips_with_pnl(1.0, 1.0)
    trips["entry_ts"] = [T0 + 2 * DAY, T0 + 3 * DAY]
    trips["exit_ts"] = [T0 + 4 * DAY, T0 + 6 * DAY]

    m = performance(curve([100.0] * 11), trips, initial_equity=100.0)

    assert m["exposure"] == pytest.approx(0.4)     # days 2..6 of 10


def test_performance_when_fills_leave_a_position_open_then_exposure_runs_to_the_end():
    fills = frames_of(fill(side="BUY", quantity="100", price="10", ts=T0 + 5 * DAY),
                      fill(side="BUY", quantity="100", price="12", ts=T0 + 6 * DAY)).fills

    m = performance(curve([1000.0] * 11), round_trips(fills), initial_equity=1000.0,
                    fills=fills)

    assert m["exposure"] == pytest.approx(0.5)
    assert m["turnover"] == pytest.approx((1000 + 1200) / 1000)


def test_periods_per_year_when_spacing_is_minutes_or_days_then_scaled_to_sessions():
    minutes = np.array([T0 + i * MINUTE for i in range(10)])
    five_minutes = np.array([T0 + i * 5 * MINUTE for i in range(10)])
    every_other_day = np.array([T0 + i * 2 * DAY for i in range(10)])

    assert periods_per_year(minutes) == pytest.approx(252 * 390)
    assert periods_per_year(five_minutes) == pytest.approx(252 * 78)
    assert periods_per_year(every_other_day) == pytest.approx(126)
    assert periods_per_year(np.array([T0])) == 0.0


def test_strategy_pnl_curves_when_sleeves_trade_then_cash_plus_marked_position_per_grid_point():
    bars = frames_of(*bars_from_closes([10, 11, 12, 13], "AAA"),
                     *bars_from_closes([50, 48, 47, 49], "BBB")).bars
    fills = frames_of(
        fill("AAA", "BUY", "10", "11", "1", ts=T0 + DAY, strategy="trend"),
        fill("AAA", "SELL", "10", "13", "1", ts=T0 + 3 * DAY, strategy="trend"),
        fill("BBB", "SELL", "2", "48", "0", ts=T0 + DAY, strategy="revert")).fills
    grid = [T0 + i * DAY for i in range(4)]

    curves = strategy_pnl_curves(fills, bars, grid)

    assert list(curves) == ["revert", "trend"]
    # trend: -111 cash after the buy; marked 110, 120, then sold at 130 less 1.
    assert curves["trend"].tolist() == pytest.approx([0.0, -1.0, 9.0, 18.0])
    # revert: short 2 at 48, marked at 48, 47, 49.
    assert curves["revert"].tolist() == pytest.approx([0.0, 0.0, 2.0, -2.0])
    assert curves["trend"].index.tolist() == grid


def test_strategy_pnl_curves_when_no_fills_then_no_curves():
    bars = frames_of(*bars_from_closes([10, 11], "AAA")).bars

    assert strategy_pnl_curves(frames_of().fills, bars, [T0, T0 + DAY]) == {}


def test_equity_curve_when_instant_has_several_valuations_then_last_one_counts():
    def valued(ts, equity):
        return s.PortfolioValued(**header(ts, "portfolio"), account="paper", cash=Decimal(0),
                                 equity=Decimal(equity), gross_exposure=Decimal(0),
                                 net_exposure=Decimal(0), realized_pnl=Decimal(0),
                                 unrealized_pnl=Decimal(0), commissions=Decimal(0),
                                 high_water_mark=Decimal(equity), drawdown=Decimal(0))

    valuations = frames_of(valued(T0, "100"), valued(T0, "101"), valued(T0 + DAY, "103")).valuations

    equity = equity_curve(valuations)

    assert equity.to_dict() == {T0: 101.0, T0 + DAY: 103.0}
