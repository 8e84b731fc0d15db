"""Incremental indicators against direct pandas computations, and their warm-up."""
from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from strategies.indicators import Atr, Ema, RollingStd, RollingVolatility, Rsi, Sma, ZScore

RTOL = 1e-9


@pytest.fixture
def rng():
    """A seeded generator; the seed is printed so a failure can be replayed."""
    seed = random.SystemRandom().randrange(2**32)
    print(f"indicator test seed: {seed}")
    return np.random.default_rng(seed)


def random_walk(rng, n: int = 2_000) -> np.ndarray:
    """Prices around 100 with ~1% moves: the scale of real closes."""
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, size=n)))


def feed(indicator, values) -> np.ndarray:
    """Every update's output, None as NaN, to line up with pandas' NaN warm-up."""
    out = [indicator.update(v) for v in values]
    return np.array([np.nan if v is None else v for v in out])


def assert_matches(actual: np.ndarray, expected: np.ndarray, atol: float = 0.0) -> None:
    """Same warm-up length (NaNs in the same places) and the same values after it."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    ready = ~np.isnan(expected)
    assert ready.any()
    np.testing.assert_allclose(actual[ready], expected[ready], rtol=RTOL, atol=atol)


def seeded_smoothing(values: pd.Series, period: int, alpha: float) -> pd.Series:
    """Recursive smoothing seeded with the mean of the first `period` values."""
    seeded = values.copy()
    seeded.iloc[: period - 1] = np.nan
    seeded.iloc[period - 1] = values.iloc[:period].mean()
    out = seeded.iloc[period - 1:].ewm(alpha=alpha, adjust=False).mean()
    return out.reindex(values.index)


@pytest.mark.parametrize("window", [1, 2, 10, 30])
def test_sma_when_fed_random_walk_then_matches_pandas_rolling_mean(rng, window):
    prices = random_walk(rng)
    expected = pd.Series(prices).rolling(window).mean().to_numpy()
    assert_matches(feed(Sma(window), prices), expected)


def test_sma_when_replay_is_long_then_rounding_does_not_drift(rng):
    prices = random_walk(rng, 200_000)
    expected = pd.Series(prices).rolling(50).mean().to_numpy()
    assert_matches(feed(Sma(50), prices), expected)


def test_sma_when_window_not_full_then_none_and_value_none():
    sma = Sma(3)
    assert sma.update(1.0) is None
    assert sma.update(2.0) is None
    assert sma.value is None
    assert sma.update(6.0) == pytest.approx(3.0, rel=RTOL)
    assert sma.value == pytest.approx(3.0, rel=RTOL)


@pytest.mark.parametrize("period", [1, 5, 20])
def test_ema_when_fed_random_walk_then_matches_sma_seeded_pandas_ewm(rng, period):
    prices = pd.Series(random_walk(rng))
    expected = seeded_smoothing(prices, period, 2.0 / (period + 1)).to_numpy()
    assert_matches(feed(Ema(period), prices), expected)


def test_ema_when_period_reached_then_first_value_is_simple_mean():
    ema = Ema(3)
    assert [ema.update(x) for x in (1.0, 2.0)] == [None, None]
    assert ema.update(6.0) == pytest.approx(3.0, rel=RTOL)
    assert ema.update(7.0) == pytest.approx(3.0 + 0.5 * (7.0 - 3.0), rel=RTOL)


@pytest.mark.parametrize("period", [2, 14])
def test_rsi_when_fed_random_walk_then_matches_wilder_pandas(rng, period):
    prices = pd.Series(random_walk(rng))
    change = prices.diff()
    gains = change.clip(lower=0.0).iloc[1:].reset_index(drop=True)
    losses = (-change).clip(lower=0.0).iloc[1:].reset_index(drop=True)
    avg_gain = seeded_smoothing(gains, period, 1.0 / period)
    avg_loss = seeded_smoothing(losses, period, 1.0 / period)
    rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    expected = np.concatenate([[np.nan], rsi.to_numpy()])
    assert_matches(feed(Rsi(period), prices), expected)


def test_rsi_when_prices_only_rise_or_stay_flat_then_100_or_50():
    rising, flat = Rsi(3), Rsi(3)
    assert [rising.update(x) for x in (1.0, 2.0, 3.0)] == [None, None, None]
    assert rising.update(4.0) == 100.0
    assert [flat.update(5.0) for _ in range(4)][-1] == 50.0


@pytest.mark.parametrize("period", [1, 14])
def test_atr_when_fed_random_bars_then_matches_wilder_pandas(rng, period):
    close = pd.Series(random_walk(rng))
    high = close * (1.0 + rng.uniform(0.0, 0.02, size=len(close)))
    low = close * (1.0 - rng.uniform(0.0, 0.02, size=len(close)))
    prev = close.shift(1)
    true_range = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(
        axis=1)   # skips the NaNs of the first bar, leaving high - low
    expected = seeded_smoothing(true_range, period, 1.0 / period).to_numpy()
    atr = Atr(period)
    actual = np.array([np.nan if v is None else v
                       for v in map(atr.update, high, low, close)])
    assert_matches(actual, expected)


def test_atr_when_gap_up_then_true_range_reaches_previous_close():
    atr = Atr(1)
    assert atr.update(10.0, 9.0, 9.5) == pytest.approx(1.0, rel=RTOL)
    assert atr.update(12.0, 11.5, 11.8) == pytest.approx(12.0 - 9.5, rel=RTOL)


def exact_rolling(values: np.ndarray, window: int, stat) -> np.ndarray:
    """`stat` of each full window computed from scratch (two-pass), NaN before the first.

    The reference for the std-based indicators: pandas' own rolling std is an online
    algorithm that is itself off by up to ~1e-7 relative on near-flat windows.
    """
    windows = sliding_window_view(values, window)
    return np.concatenate([np.full(window - 1, np.nan), stat(windows)])


def sample_std(windows: np.ndarray) -> np.ndarray:
    return windows.std(axis=1, ddof=1)


@pytest.mark.parametrize("window", [2, 20])
def test_rolling_std_when_fed_random_walk_then_matches_numpy_mean_and_std(rng, window):
    prices = random_walk(rng)
    moments = RollingStd(window)
    std, mean = [], []
    for x in prices:
        s = moments.update(x)
        std.append(np.nan if s is None else s)
        mean.append(np.nan if moments.mean is None else moments.mean)
    assert_matches(np.array(std), exact_rolling(prices, window, sample_std))
    assert_matches(np.array(mean), exact_rolling(prices, window, lambda w: w.mean(axis=1)))


@pytest.mark.parametrize("level", [1e4, 1e6])
def test_rolling_std_when_prices_are_large_next_to_spread_then_still_exact(rng, level):
    prices = level + rng.normal(0.0, 0.01, size=5_000)
    assert_matches(feed(RollingStd(20), prices), exact_rolling(prices, 20, sample_std))


def test_zscore_when_fed_random_walk_then_matches_numpy(rng):
    prices = random_walk(rng)
    expected = exact_rolling(
        prices, 20, lambda w: (w[:, -1] - w.mean(axis=1)) / w.std(axis=1, ddof=1))
    # z is of order 1, so an absolute 1e-9 is the relative tolerance on its scale.
    assert_matches(feed(ZScore(20), prices), expected, atol=1e-9)


def test_zscore_when_window_is_flat_then_zero():
    z = ZScore(3)
    assert [z.update(5.0) for _ in range(3)] == [None, None, 0.0]
    assert z.std == 0.0 and z.mean == 5.0


@pytest.mark.parametrize("window", [5, 20])
def test_volatility_when_fed_random_walk_then_matches_numpy_log_return_std(rng, window):
    prices = random_walk(rng)
    returns = np.diff(np.log(prices))
    expected = np.concatenate([[np.nan], exact_rolling(returns, window, sample_std)])
    assert_matches(feed(RollingVolatility(window), prices), expected)


def test_volatility_when_window_plus_one_prices_then_ready():
    vol = RollingVolatility(2)
    assert [vol.update(p) for p in (100.0, 101.0)] == [None, None]
    expected = np.std(np.diff(np.log([100.0, 101.0, 99.0])), ddof=1)
    assert vol.update(99.0) == pytest.approx(expected, rel=RTOL)


def test_volatility_when_price_not_positive_then_skipped_and_value_kept():
    vol = RollingVolatility(2)
    for p in (100.0, 101.0, 99.0):
        vol.update(p)
    before = vol.value
    assert vol.update(0.0) == before
    assert vol.update(math.nan) == before
    expected = np.std(np.diff(np.log([101.0, 99.0, 100.0])), ddof=1)
    assert vol.update(100.0) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("make", [lambda: Sma(0), lambda: Ema(0), lambda: Rsi(0),
                                  lambda: Atr(0), lambda: RollingStd(1)])
def test_indicator_when_window_too_small_then_value_error(make):
    with pytest.raises(ValueError, match="must be >="):
        make()
