"""The latency histogram: one panel per hop, milliseconds on a log axis."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from firetape.audit.queries import END_TO_END, HOPS


def plot_latency(hops: pd.DataFrame, path: Path, title: str = "firetape order latency") -> Path:
    """Write a PNG of the distribution of every hop in `hops` (from queries.hop_values)."""
    import matplotlib

    matplotlib.use("Agg")   # files only: never needs a display
    import matplotlib.pyplot as plt

    names = [*HOPS, END_TO_END]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), constrained_layout=True)
    for ax, name in zip(axes.flat, names):
        values = hops[name].dropna().to_numpy(dtype=float) if name in hops else np.array([])
        # A log axis needs positive values; a zero hop (two events in the same microsecond)
        # is drawn at the smallest bin instead of being dropped.
        values = np.clip(values, 1e-4, None)
        if len(values):
            bins = np.logspace(np.log10(values.min()), np.log10(values.max()) + 1e-9, 40)
            ax.hist(values, bins=bins, color="#3b6ea5")
            ax.set_xscale("log")
            p50, p99 = np.percentile(values, [50, 99])
            ax.axvline(p50, color="#2a9d8f", linestyle="--", label=f"p50 {p50:.3f} ms")
            ax.axvline(p99, color="#e76f51", linestyle="--", label=f"p99 {p99:.3f} ms")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no orders", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{name} (n={len(values)})", fontsize=9)
        ax.set_xlabel("ms")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
