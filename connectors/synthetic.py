"""Seeded synthetic OHLCV bars: for tests, demos and the bundled sample.

Each symbol's log close follows either a geometric Brownian motion with its own drift
and volatility (a trending symbol) or an Ornstein-Uhlenbeck process around a slowly
drifting anchor (a mean-reverting one), so trend and reversion strategies both find
something to trade. Everything is drawn from one numpy Generator seeded by `seed`, in a
fixed order, so the same arguments give the same arrays bit for bit.

Calendar: weekdays only (exchange holidays are not modelled). Minute bars cover the
regular US session, 09:30-16:00 America/New_York, 390 per day, stamped with the bar's
close (09:31 ... 16:00); daily bars are stamped 16:00 New York. Both in UTC nanoseconds,
so daylight saving time moves the UTC clock time, as it does for the real market.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from connectors.files.frame import PRICE_COLUMNS, BarFrame
from connectors.files.writer import write_bars

__all__ = ["generate_bars", "round_prices", "session_timestamps", "write_bars"]

MINUTES_PER_SESSION = 390
_PERIODS_PER_YEAR = {"1min": 252 * MINUTES_PER_SESSION, "1d": 252}
_NS_PER_MINUTE = 60_000_000_000
_EXCHANGE_TZ = "America/New_York"


def session_timestamps(start: str, count: int, interval: str = "1min") -> np.ndarray:
    """The first `count` bar close times (int64 ns UTC) on weekdays from `start` on."""
    if interval not in _PERIODS_PER_YEAR:
        raise ValueError(f"interval must be one of {sorted(_PERIODS_PER_YEAR)}, got {interval!r}")
    per_day = MINUTES_PER_SESSION if interval == "1min" else 1
    days = pd.bdate_range(start=pd.Timestamp(start).normalize(), periods=-(-count // per_day))
    anchor = pd.Timedelta(hours=9, minutes=30) if interval == "1min" else pd.Timedelta(hours=16)
    local = (days + anchor).tz_localize(_EXCHANGE_TZ).tz_convert("UTC").tz_localize(None)
    day_ns = local.as_unit("ns").to_numpy().view(np.int64)
    if interval == "1d":
        return day_ns[:count].copy()
    closes = np.arange(1, MINUTES_PER_SESSION + 1, dtype=np.int64) * _NS_PER_MINUTE
    return (day_ns[:, None] + closes[None, :]).ravel()[:count]


def generate_bars(symbols: int | Sequence[str] = 10, bars_per_symbol: int = 390, *, seed: int = 7,
                  interval: str = "1min", start: str = "2024-01-02", mu: float = 0.05,
                  sigma: float = 0.25, start_price: tuple[float, float] = (20.0, 200.0),
                  mean_reverting: float = 0.0, half_life: float = 10.0) -> BarFrame:
    """Generate bars for every symbol at the same timestamps, sorted by (ts, symbol).

    `symbols` is a count (names SYM000, SYM001, ...) or explicit names. `mu` and `sigma`
    are annualised; each symbol draws its own drift around `mu` (spread `sigma`) and its
    volatility around `sigma`, and a start price log-uniform in `start_price`. A share
    `mean_reverting` of the symbols (chosen by the seed) instead revert, with a half-life
    near `half_life` bars, to an anchor that grows at `mu`. Prices satisfy
    low <= open, close <= high, all > 0; volumes are positive whole numbers.
    """
    names = _symbol_names(symbols)
    n, bars = len(names), int(bars_per_symbol)
    if bars < 0 or sigma < 0 or not 0 <= mean_reverting <= 1 or half_life <= 0:
        raise ValueError("need bars_per_symbol >= 0, sigma >= 0, 0 <= mean_reverting <= 1, half_life > 0")
    if not 0 < start_price[0] <= start_price[1]:
        raise ValueError(f"start_price must be a range of positive prices, got {start_price!r}")
    ts = session_timestamps(start, bars, interval)
    rng = np.random.default_rng(seed)
    step = np.sqrt(1.0 / _PERIODS_PER_YEAR[interval])
    dt = step * step

    # Per-symbol character, drawn first so it does not depend on the series length.
    drift = mu + sigma * rng.standard_normal(n)
    vol = sigma * np.exp(0.25 * rng.standard_normal(n))
    first = np.exp(rng.uniform(np.log(start_price[0]), np.log(start_price[1]), n))
    base_volume = np.exp(rng.uniform(np.log(2e5), np.log(5e6), n))
    reverting = np.zeros(n, bool)
    reverting[rng.permutation(n)[: round(mean_reverting * n)]] = True
    phi = 0.5 ** (1.0 / np.maximum(half_life * np.exp(0.3 * rng.standard_normal(n)), 1.0))

    shocks = rng.standard_normal((n, bars))
    noise = vol[:, None] * step
    log_close = np.log(first)[:, None] + np.cumsum((drift - 0.5 * vol**2)[:, None] * dt + noise * shocks, axis=1)
    if reverting.any():
        # Reverting symbols hold their own character: their anchor drifts at the common `mu` only.
        anchor = np.log(first[reverting])[:, None] + mu * dt * np.arange(1, bars + 1)
        log_close[reverting] = anchor + _ar1(phi[reverting], noise[reverting] * shocks[reverting])

    # Open near the previous close; high and low beyond the body by a half-normal amount.
    prev = np.concatenate([np.log(first)[:, None], log_close[:, :-1]], axis=1)
    log_open = prev + 0.2 * noise * rng.standard_normal((n, bars))
    body_high, body_low = np.maximum(log_open, log_close), np.minimum(log_open, log_close)
    high = np.exp(body_high + 0.5 * noise * np.abs(rng.standard_normal((n, bars))))
    low = np.exp(body_low - 0.5 * noise * np.abs(rng.standard_normal((n, bars))))
    open_, close = np.exp(log_open), np.exp(log_close)
    # Busier on big moves (and, for minute bars, at the open and the close).
    per_bar = base_volume / (MINUTES_PER_SESSION if interval == "1min" else 1)
    activity = np.exp(0.4 * rng.standard_normal((n, bars))) * (1 + 0.5 * np.abs(shocks))
    if interval == "1min":
        minute = np.arange(bars) % MINUTES_PER_SESSION
        activity *= 0.6 + 1.6 * ((minute - 194.5) / 194.5) ** 2
    volume = np.maximum(np.rint(per_bar[:, None] * activity), 1.0)

    # Rows are time-major with symbols in name order, which is (ts, symbol) order.
    by_name = np.argsort(np.array(names, dtype=object), kind="stable")
    # exp is monotone, so this holds already; the clamp makes it true by construction.
    columns = {"open": open_, "high": np.maximum(high, np.maximum(open_, close)),
               "low": np.minimum(low, np.minimum(open_, close)), "close": close, "volume": volume}
    return BarFrame(ts=np.repeat(ts, n), symbol_code=np.tile(np.arange(n, dtype=np.int32), bars),
                    symbols=tuple(sorted(names)), sources=(f"synthetic(seed={seed}, interval={interval})",),
                    **{c: a[by_name].T.ravel() for c, a in columns.items()})


def round_prices(frame: BarFrame, decimals: int = 2) -> BarFrame:
    """Prices rounded to `decimals` places and volumes to whole numbers, with OHLC made
    consistent again afterwards (rounding can put open a cent above high) and every price
    at least one tick."""
    tick = 10.0 ** -decimals
    o, h, low, c = (np.maximum(np.round(getattr(frame, p), decimals), tick) for p in PRICE_COLUMNS)
    return BarFrame(ts=frame.ts, symbol_code=frame.symbol_code, symbols=frame.symbols,
                    sources=frame.sources, open=o, close=c, high=np.maximum.reduce([h, o, c]),
                    low=np.minimum.reduce([low, o, c]), volume=np.rint(frame.volume))


def _symbol_names(symbols: int | Sequence[str]) -> list[str]:
    if isinstance(symbols, (int, np.integer)):
        width = max(3, len(str(int(symbols) - 1)))
        return [f"SYM{i:0{width}d}" for i in range(int(symbols))]
    names = [str(s) for s in symbols]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError("symbol names must be distinct and non-empty")
    return names


def _ar1(phi: np.ndarray, innovations: np.ndarray) -> np.ndarray:
    """x[t] = phi * x[t-1] + e[t] per row, from x[-1] = 0.

    A loop over time, vectorised across symbols: the recurrence has no closed form that
    is numerically safe for long series, and the loop costs microseconds per bar.
    """
    out = np.empty_like(innovations)
    level = np.zeros(len(phi))
    for t in range(innovations.shape[1]):
        level = phi * level + innovations[:, t]
        out[:, t] = level
    return out
