"""Per-hop wall-clock latency of every order, from the log records' append times.

An order's chain is found through the headers: its SubmitOrder's correlation_id is the
event_id of the bar that started the chain, and its causation_id the event_id of the
signal that caused it. Later hops are found by client_order_id. Each hop is the time
between two consecutive stages; a hop with a missing end (a denied order has no
submission or fill) is NaN and is skipped by the summary.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from firetape.report.frames import RunFrames

# Stages in pipeline order; a hop runs from one stage to the next.
STAGES = ("bar", "signal", "request", "decision", "submitted", "accepted", "first_fill",
          "last_fill")
HOPS = tuple(f"{a}_to_{b}" for a, b in zip(STAGES, STAGES[1:]))
END_TO_END = "bar_to_last_fill"
PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))


def _wall_by(frame: pd.DataFrame, key: str, how: str = "first") -> pd.Series:
    """ts_wall per key: the first (or min/max) record of each key, as nullable Int64.

    Wall-clock nanoseconds (~1.8e18) do not fit a float exactly, so times stay
    integers until the differences are taken.
    """
    if frame.empty:
        return pd.Series(dtype="Int64")
    grouped = frame.groupby(key, sort=False)["ts_wall"]
    return getattr(grouped, how)().astype("Int64")


def _at(walls: pd.Series, keys: pd.Series):
    """The wall times of `keys` in their order (NA where absent), without index alignment."""
    return walls.reindex(keys.to_numpy()).array


def stage_times(frames: RunFrames) -> pd.DataFrame:
    """Wall-clock ns (nullable Int64) at which each stage of each order was appended,
    one row per client_order_id (NA where the stage did not happen)."""
    requests = frames.requests.drop_duplicates("client_order_id", keep="first")
    times = pd.DataFrame(index=pd.Index(requests["client_order_id"], name="client_order_id"))
    times["strategy"] = requests["strategy"].to_numpy()
    times["symbol"] = requests["symbol"].to_numpy()
    # Only the bars that started an order matter; filtering first keeps the join small.
    chain_bars = frames.bars[frames.bars["event_id"].isin(requests["correlation_id"])]
    times["bar"] = _at(_wall_by(chain_bars, "event_id"), requests["correlation_id"])
    times["signal"] = _at(_wall_by(frames.signals, "event_id"), requests["causation_id"])
    times["request"] = requests["ts_wall"].astype("Int64").array
    cids = requests["client_order_id"]
    times["decision"] = _at(_wall_by(frames.decisions, "client_order_id"), cids)
    updates = frames.updates
    for stage, kind in (("submitted", "OrderSubmitted"), ("accepted", "OrderAccepted")):
        times[stage] = _at(_wall_by(updates[updates["type"] == kind], "client_order_id"), cids)
    times["first_fill"] = _at(_wall_by(frames.fills, "client_order_id", "min"), cids)
    times["last_fill"] = _at(_wall_by(frames.fills, "client_order_id", "max"), cids)
    return times


def _micros(end: pd.Series, start: pd.Series) -> np.ndarray:
    return ((end - start).to_numpy(dtype="float64", na_value=np.nan)) / 1_000.0


def hop_latencies(frames: RunFrames) -> pd.DataFrame:
    """One row per order (index client_order_id) with strategy, symbol, approved, and
    one column per hop plus `bar_to_last_fill`, in microseconds (float, NaN if missing)."""
    times = stage_times(frames)
    hops = times[["strategy", "symbol"]].copy()
    decided = frames.decisions.drop_duplicates("client_order_id").set_index("client_order_id")
    hops["approved"] = hops.index.map(decided["approved"]).astype("boolean")
    for hop, (start, end) in zip(HOPS, zip(STAGES, STAGES[1:])):
        hops[hop] = _micros(times[end], times[start])
    hops[END_TO_END] = _micros(times["last_fill"], times["bar"])
    return hops


def latency_summary(hops: pd.DataFrame) -> pd.DataFrame:
    """count, p50, p95, p99 and max (microseconds) per hop and end to end; missing hops
    are skipped, and a hop never observed has count 0 and NaN statistics."""
    rows = {}
    for hop in (*HOPS, END_TO_END):
        values = hops[hop].dropna().to_numpy(dtype=float) if hop in hops else np.array([])
        row = {"count": int(len(values))}
        for name, q in PERCENTILES:
            row[name] = float(np.percentile(values, q)) if len(values) else np.nan
        row["max"] = float(values.max()) if len(values) else np.nan
        rows[hop] = row
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "hop"
    return summary
