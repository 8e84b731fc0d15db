"""Performance metrics of an equity curve and its round trips, overall or per strategy.

Conventions (every value is a plain float or int, or None, so a summary is JSON):
- returns are fractions (0.05 = +5 %); max_drawdown is a positive fraction below the
  high-water mark, which starts at `initial_equity`;
- max_drawdown_duration is in calendar days (float): the longest stretch from a peak to
  the first point back at or above it, or to the end of the curve if it never recovers;
- periods per year come from the median spacing of the equity index: a spacing of at
  least a day gives 252 / spacing-in-days, an intraday spacing 252 x 6.5 h / spacing;
  cagr uses the number of periods over periods per year as the elapsed years;
- sharpe and sortino use a zero risk-free rate; sortino's downside deviation is the
  root mean square of the negative period returns over all periods;
- exposure is the fraction of the curve's time span with any sleeve position open;
- turnover is total traded notional over mean equity for the whole run (not annualised);
- undefined values are None: sharpe and sortino without variation, calmar without a
  drawdown, win_rate and avg_trade without trades, profit_factor without a losing trade,
  cagr with fewer than two points. Amounts and counts without data are 0.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400 * 1_000_000_000
TRADING_DAYS = 252
SESSION_NS = int(6.5 * 3600 * 1_000_000_000)


def periods_per_year(index_ns: np.ndarray) -> float:
    """Periods a year implied by the median spacing of nanosecond timestamps (0 if < 2)."""
    if len(index_ns) < 2:
        return 0.0
    spacing = float(np.median(np.diff(index_ns)))
    if spacing <= 0:
        return 0.0
    if spacing >= NS_PER_DAY:
        return TRADING_DAYS / (spacing / NS_PER_DAY)
    return TRADING_DAYS * SESSION_NS / spacing


def _drawdown(values: np.ndarray, index_ns: np.ndarray, initial_equity: float
              ) -> tuple[float, float]:
    """Max drawdown (fraction) and the longest time under water (days)."""
    peaks = np.maximum.accumulate(np.concatenate(([initial_equity], values)))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(peaks > 0, 1.0 - values / peaks, 0.0)
    max_dd = float(depth.max()) if len(depth) else 0.0
    if len(values) < 2:
        return max(max_dd, 0.0), 0.0
    at_peak = values >= peaks
    # Timestamp of the latest point at (or above) its high-water mark, carried forward.
    last_peak = np.maximum.accumulate(np.where(at_peak, index_ns, index_ns[0]))
    # A step counts when it starts or ends under water; it is measured from the peak.
    under = ~at_peak[1:] | ~at_peak[:-1]
    stretches = (index_ns[1:] - last_peak[:-1])[under]
    longest = int(stretches.max()) if len(stretches) else 0
    return max(max_dd, 0.0), longest / NS_PER_DAY


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 or not math.isfinite(denominator) else numerator / denominator


def _trade_stats(trips: pd.DataFrame | None) -> dict:
    pnl = np.asarray([] if trips is None or trips.empty else trips["pnl"], dtype=float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    return {
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else None,
        "profit_factor": _ratio(float(wins.sum()), float(-losses.sum())),
        "avg_trade": float(pnl.mean()) if len(pnl) else None,
        "trade_count": int(len(pnl)),
    }


def _merged_length(starts: list[int], ends: list[int]) -> int:
    """Total length of the union of [start, end) intervals."""
    total, cur_start, cur_end = 0, None, None
    for start, end in sorted(zip(starts, ends)):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def _open_intervals(trips: pd.DataFrame | None, fills: pd.DataFrame | None, end_ts: int
                    ) -> tuple[list[int], list[int]]:
    """When sleeves held a position: from fills if given (they also see positions still
    open at the end), else from the closed round trips."""
    if fills is not None and not fills.empty:
        starts, ends, open_since = [], [], {}
        position: dict[tuple[str, str], float] = {}
        signed = np.where(fills["side"].str.upper() == "BUY", 1.0, -1.0) * fills["quantity"]
        for key, ts, qty in zip(zip(fills["strategy"], fills["symbol"]),
                                fills["ts_event"].tolist(), signed.tolist()):
            before = position.get(key, 0.0)
            after = before + qty
            position[key] = after
            if abs(after) < 1e-12:
                position[key] = after = 0.0
            if before == 0.0 and after != 0.0:
                open_since[key] = ts
            elif before != 0.0 and after == 0.0:
                starts.append(open_since.pop(key))
                ends.append(ts)
        for since in open_since.values():
            starts.append(since)
            ends.append(max(end_ts, since))
        return starts, ends
    if trips is None or trips.empty:
        return [], []
    return trips["entry_ts"].astype("int64").tolist(), trips["exit_ts"].astype("int64").tolist()


def _exposure(trips, fills, index_ns: np.ndarray) -> float:
    if len(index_ns) < 2 or index_ns[-1] <= index_ns[0]:
        return 0.0
    first, last = int(index_ns[0]), int(index_ns[-1])
    starts, ends = _open_intervals(trips, fills, last)
    clipped = [(max(s, first), min(e, last)) for s, e in zip(starts, ends)]
    clipped = [(s, e) for s, e in clipped if e > s]
    held = _merged_length([s for s, _ in clipped], [e for _, e in clipped])
    return held / (last - first)


def _traded_notional(trips: pd.DataFrame | None, fills: pd.DataFrame | None) -> float:
    if fills is not None:
        return float((fills["quantity"].abs() * fills["price"].abs()).sum()) if len(fills) else 0.0
    if trips is None or trips.empty:
        return 0.0
    return float((trips["quantity"] * (trips["avg_entry"] + trips["avg_exit"])).sum())


def performance(equity: pd.Series, trips: pd.DataFrame | None, *, initial_equity: float,
                fills: pd.DataFrame | None = None) -> dict:
    """Return, risk and trade metrics of an equity curve (see the module docstring for
    units and for which values are None). `equity` is indexed by nanosecond timestamps;
    `fills`, when given, make exposure and turnover exact, including open positions."""
    curve = equity.dropna().sort_index() if equity is not None else pd.Series(dtype=float)
    values = curve.to_numpy(dtype=float)
    index_ns = curve.index.to_numpy(dtype=np.int64)
    final = float(values[-1]) if len(values) else float(initial_equity)
    total_return = final / initial_equity - 1.0 if initial_equity else 0.0

    ppy = periods_per_year(index_ns)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0 if len(values) > 1 else np.array([])
    returns = returns[np.isfinite(returns)]
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    mean = float(returns.mean()) if len(returns) else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) else 0.0
    scale = math.sqrt(ppy)
    # Floating noise on a flat curve is not volatility.
    std = 0.0 if std < 1e-15 else std
    downside = 0.0 if downside < 1e-15 else downside

    years = len(returns) / ppy if ppy else 0.0
    growth = final / initial_equity if initial_equity else 0.0
    cagr = growth ** (1.0 / years) - 1.0 if years > 0 and growth > 0 else None
    max_dd, dd_days = _drawdown(values, index_ns, float(initial_equity))
    mean_equity = float(values.mean()) if len(values) else float(initial_equity)

    return {
        "total_return": float(total_return),
        "cagr": None if cagr is None else float(cagr),
        "annual_volatility": std * scale,
        "sharpe": None if std == 0 else mean / std * scale,
        "sortino": None if downside == 0 else mean / downside * scale,
        "max_drawdown": max_dd,
        "max_drawdown_duration_days": dd_days,
        "calmar": None if cagr is None or max_dd == 0 else float(cagr) / max_dd,
        **_trade_stats(trips),
        "exposure": _exposure(trips, fills, index_ns),
        "turnover": _ratio(_traded_notional(trips, fills), mean_equity) or 0.0,
        "periods_per_year": ppy,
    }


def _closes_by_symbol(bars: pd.DataFrame, symbols) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    wanted = bars[bars["symbol"].isin(list(symbols))].sort_values("ts_event", kind="stable")
    return {symbol: (group["ts_event"].to_numpy(dtype=np.int64),
                     group["close"].to_numpy(dtype=float))
            for symbol, group in wanted.groupby("symbol", sort=False)}


def _sleeve_pnl(sleeve: pd.DataFrame, closes: tuple[np.ndarray, np.ndarray] | None,
                grid: np.ndarray) -> np.ndarray:
    """One sleeve's PnL (cash + position x close) at each grid timestamp."""
    fill_ts = sleeve["ts_event"].to_numpy(dtype=np.int64)
    # Fills at a grid instant count in its valuation, like the portfolio's own marks.
    done = np.searchsorted(fill_ts, grid, side="right")
    position = np.concatenate(([0.0], np.cumsum(sleeve["_signed"].to_numpy())))[done]
    cash = np.concatenate(([0.0], np.cumsum(sleeve["_cash"].to_numpy())))[done]
    last_fill_price = np.concatenate(([np.nan], sleeve["price"].to_numpy(dtype=float)))[done]
    mark = np.full(len(grid), np.nan)
    if closes is not None and len(closes[0]):
        seen = np.searchsorted(closes[0], grid, side="right") - 1
        mark = np.where(seen >= 0, closes[1][np.maximum(seen, 0)], np.nan)
    # Before the symbol's first bar (not expected in a replay) the fill price is the mark.
    mark = np.where(np.isnan(mark), last_fill_price, mark)
    flat = np.abs(position) < 1e-9
    return cash + np.where(flat, 0.0, position * np.where(flat, 0.0, mark))


def strategy_pnl_curves(fills: pd.DataFrame, bars: pd.DataFrame, grid_ts) -> dict[str, pd.Series]:
    """Each strategy sleeve's PnL marked at the closes on the valuation grid.

    Positions come from cumulative signed fills, cash from fill notionals and
    commissions, and each symbol's close is carried forward to every grid timestamp.
    Returns {strategy: Series indexed by grid ts (ns)}, strategies in name order.
    """
    grid = np.unique(np.asarray(grid_ts, dtype=np.int64))
    if fills.empty:
        return {}
    signed = np.where(fills["side"].str.upper() == "BUY", 1.0, -1.0) * fills["quantity"]
    ordered = fills.assign(_signed=signed, _cash=-signed * fills["price"] - fills["commission"])
    ordered = ordered.sort_values("ts_event", kind="stable")
    closes = _closes_by_symbol(bars, ordered["symbol"].unique())
    curves: dict[str, np.ndarray] = {}
    for (strategy, symbol), sleeve in ordered.groupby(["strategy", "symbol"], sort=True):
        pnl = _sleeve_pnl(sleeve, closes.get(symbol), grid)
        curves[strategy] = curves[strategy] + pnl if strategy in curves else pnl
    index = pd.Index(grid, name="ts_event")
    return {name: pd.Series(pnl, index=index, name=name) for name, pnl in curves.items()}


def equity_curve(valuations: pd.DataFrame) -> pd.Series:
    """The account equity at each valuation instant, indexed by ts (ns).

    Several valuations can share an instant (one per fill, one per bar): the last one
    wins. With several accounts, each account's last equity is carried forward and summed.
    """
    if valuations.empty:
        return pd.Series(dtype=float, index=pd.Index([], dtype=np.int64, name="ts_event"),
                         name="equity")
    last = valuations.groupby(["ts_event", "account"], sort=True)["equity"].last()
    by_account = last.unstack("account").ffill()
    curve = by_account.sum(axis=1, min_count=1).astype(float)
    curve.name = "equity"
    return curve
