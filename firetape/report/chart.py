"""The equity-and-drawdown chart of a run, as a PNG.

A Figure with an explicit Agg canvas is used instead of pyplot: no global figure
state, no GUI backend, safe in tests and in headless containers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter, StrMethodFormatter


def _account_curve(valuations: pd.DataFrame) -> pd.DataFrame:
    """Last valuation per instant (several can share one: after each fill and the bar)."""
    last = valuations.groupby("ts_event", sort=True)[["equity", "drawdown"]].last()
    return last.reset_index()


def plot_equity(valuations: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Write a PNG of equity (top) and drawdown (bottom, shaded) against time (UTC).

    `valuations` needs ts_event (ns), equity and drawdown (a fraction, 0..1) columns.
    Returns the path written.
    """
    path = Path(path)
    figure = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    figure.suptitle(title)

    curve = _account_curve(valuations) if len(valuations) else None
    if curve is None:
        top.text(0.5, 0.5, "no valuations in this run", ha="center", va="center",
                 transform=top.transAxes)
    else:
        # Numpy datetime64 needs no pandas converter registration in matplotlib.
        when = curve["ts_event"].to_numpy(dtype=np.int64).astype("datetime64[ns]")
        drawdown = -curve["drawdown"].to_numpy(dtype=float)
        top.plot(when, curve["equity"].to_numpy(dtype=float), color="tab:blue", linewidth=1.2)
        bottom.fill_between(when, drawdown, 0.0, color="tab:red", alpha=0.35, linewidth=0)
        bottom.plot(when, drawdown, color="tab:red", linewidth=0.8)
        locator = AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))

    top.set_ylabel("equity (account currency)")
    top.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    top.grid(True, alpha=0.3)
    bottom.set_ylabel("drawdown from peak")
    bottom.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    bottom.set_xlabel("time (UTC)")
    bottom.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
