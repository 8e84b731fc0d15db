"""The seeded bar generator, and the bundled sample it made."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.files import BarFrame, load_bars
from connectors.synthetic import generate_bars, round_prices, session_timestamps, write_bars

COLUMNS = ("ts", "symbol_code", "open", "high", "low", "close", "volume")
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"


def new_york(frame_or_ts) -> pd.DatetimeIndex:
    ts = frame_or_ts.ts if isinstance(frame_or_ts, BarFrame) else frame_or_ts
    return pd.to_datetime(ts, utc=True).tz_convert("America/New_York")


def assert_consistent(frame: BarFrame) -> None:
    assert np.all(frame.low > 0)
    assert np.all(frame.low <= np.minimum(frame.open, frame.close))
    assert np.all(frame.high >= np.maximum(frame.open, frame.close))
    assert np.all(frame.volume > 0)
    assert np.all(frame.volume == np.round(frame.volume))


def test_generate_when_same_seed_then_arrays_identical_bit_for_bit():
    first = generate_bars(5, 800, seed=11, mean_reverting=0.4)
    again = generate_bars(5, 800, seed=11, mean_reverting=0.4)

    for column in COLUMNS:
        assert getattr(first, column).tobytes() == getattr(again, column).tobytes(), column


def test_generate_when_seed_differs_then_prices_differ():
    first = generate_bars(3, 100, seed=1)
    other = generate_bars(3, 100, seed=2)

    assert np.array_equal(first.ts, other.ts)
    assert not np.array_equal(first.close, other.close)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), symbols=st.integers(1, 6), bars=st.integers(0, 600),
       interval=st.sampled_from(["1min", "1d"]), reverting=st.sampled_from([0.0, 0.5, 1.0]),
       sigma=st.sampled_from([0.0, 0.25, 1.5]))
def test_generate_when_any_seed_and_size_then_ohlc_consistent_and_rows_ordered(
        seed, symbols, bars, interval, reverting, sigma):
    frame = generate_bars(symbols, bars, seed=seed, interval=interval, mean_reverting=reverting,
                          sigma=sigma)

    assert len(frame) == symbols * bars
    assert_consistent(frame)
    assert_consistent(round_prices(frame))
    order = np.lexsort((frame.symbol_code, frame.ts))
    assert np.array_equal(order, np.arange(len(frame)))
    assert np.unique(frame.ts).size == bars


def test_generate_when_minute_bars_then_stamped_at_close_inside_new_york_session():
    frame = generate_bars(2, 390 * 5 + 10, start="2024-03-07")  # Thu; crosses DST on Sun 10th

    local = new_york(frame)
    minutes = local.hour * 60 + local.minute
    assert minutes.min() == 9 * 60 + 31 and minutes.max() == 16 * 60
    assert set(local.day_of_week) <= {0, 1, 2, 3, 4}
    per_day = pd.Series(local.date).value_counts().sort_index()
    assert per_day.tolist() == [780, 780, 780, 780, 780, 20]  # 390 bars x 2 symbols a day
    utc_open = pd.to_datetime(frame.ts, utc=True)
    assert str(utc_open[0]) == "2024-03-07 14:31:00+00:00"      # EST: UTC-5
    assert str(utc_open[780 * 2]) == "2024-03-11 13:31:00+00:00"  # EDT: UTC-4


def test_generate_when_daily_bars_then_one_per_weekday_at_new_york_close():
    frame = generate_bars(["X"], 10, interval="1d", start="2024-01-06")  # a Saturday

    local = new_york(frame)
    assert [d.isoformat() for d in local.date][:3] == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert set(local.day_of_week) <= {0, 1, 2, 3, 4}
    assert set(zip(local.hour, local.minute)) == {(16, 0)}


def test_generate_when_names_given_then_symbols_sorted_and_count_named_by_default():
    named = generate_bars(["MSFT", "AAPL"], 3)
    counted = generate_bars(3, 1)

    assert named.symbols == ("AAPL", "MSFT")
    assert named.symbol.tolist()[:2] == ["AAPL", "MSFT"]
    assert counted.symbols == ("SYM000", "SYM001", "SYM002")


@pytest.mark.parametrize("kwargs", [dict(symbols=["A", "A"]), dict(interval="5min"),
                                    dict(sigma=-0.1), dict(start_price=(0.0, 10.0))])
def test_generate_when_arguments_invalid_then_value_error(kwargs):
    with pytest.raises(ValueError):
        generate_bars(**{"symbols": 2, **kwargs})


def test_generate_when_mean_reverting_then_long_horizon_moves_shrink_against_trending():
    def variance_ratio(frame: BarFrame, horizon: int = 50) -> float:
        logs = np.log(frame.close)
        one = np.diff(logs).var()
        return np.diff(logs[::horizon]).var() / (horizon * one)

    trending = generate_bars(1, 5000, seed=3, interval="1d", mean_reverting=0.0)
    reverting = generate_bars(1, 5000, seed=3, interval="1d", mean_reverting=1.0, half_life=5)

    # A random walk keeps variance ratio near 1; reversion pulls it far below.
    assert variance_ratio(trending) > 0.6
    assert variance_ratio(reverting) < 0.3


def test_round_prices_when_rounding_crosses_high_then_ohlc_repaired():
    frame = BarFrame.from_columns(np.array([1]), ["A"], open=np.array([10.004]),
                                  high=np.array([10.004]), low=np.array([9.996]),
                                  close=np.array([9.996]), volume=np.array([3.4]))
    bent = BarFrame.from_columns(np.array([1]), ["A"], open=np.array([10.006]),
                                 high=np.array([10.0051]), low=np.array([10.0]),
                                 close=np.array([10.0]), volume=np.array([3.6]))

    rounded, repaired = round_prices(frame), round_prices(bent)

    assert (rounded.open[0], rounded.high[0], rounded.low[0], rounded.volume[0]) == (10.0, 10.0, 10.0, 3.0)
    assert (repaired.open[0], repaired.high[0], repaired.volume[0]) == (10.01, 10.01, 4.0)


def test_write_bars_when_suffix_unknown_then_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the format"):
        write_bars(generate_bars(1, 1), tmp_path / "bars.json")


def test_session_timestamps_when_count_not_whole_days_then_exactly_count_stamps():
    stamps = session_timestamps("2024-01-02", 391)

    assert len(stamps) == 391
    assert np.all(np.diff(stamps) > 0)


# --- the bundled sample --------------------------------------------------------------------


def test_sample_when_loaded_then_six_symbols_of_504_consistent_daily_bars():
    frame = load_bars([SAMPLE_DIR / "bars.csv"])

    assert frame.symbols == tuple(f"SYM{i:03d}" for i in range(6))
    assert len(frame) == 6 * 504
    assert np.bincount(frame.symbol_code).tolist() == [504] * 6
    assert_consistent(frame)
    assert np.array_equal(frame.close, np.round(frame.close, 2))
    assert set(zip(new_york(frame).hour, new_york(frame).minute)) == {(16, 0)}
    assert (SAMPLE_DIR / "bars.csv").stat().st_size < 300_000


def test_sample_when_regenerated_then_bytes_identical(tmp_path):
    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE_DIR / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    fresh = module.main(tmp_path / "bars.csv")

    assert fresh.read_bytes() == (SAMPLE_DIR / "bars.csv").read_bytes()
