"""The run report: a JSON-ready summary of a run's frames, and its rendering with rich.

`build_summary` does all the computing and returns plain ints, floats, strings, None,
lists and dicts, so the same summary can be printed, written as JSON or compared in a
test; `render_report` only formats it.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from firetape.report.frames import RunFrames
from firetape.report.latency import END_TO_END, HOPS, hop_latencies, latency_summary
from firetape.report.metrics import equity_curve, performance, strategy_pnl_curves
from firetape.report.roundtrips import round_trips


def _plain(value):
    """numpy scalars to Python numbers and NaN to None, so json.dumps never fails."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _order_counts(frames: RunFrames, trips: pd.DataFrame) -> dict:
    decisions = frames.decisions.drop_duplicates("client_order_id", keep="first")
    denied = decisions[~decisions["approved"].astype(bool)]
    reasons = Counter(reason for listed in denied["reason_list"] for reason in listed)
    updates = frames.updates.drop_duplicates(["client_order_id", "type"])["type"].value_counts()
    return {
        "bars": int(len(frames.bars)),
        "signals": int(len(frames.signals)),
        "strategy_failures": int(len(frames.failures)),
        "orders": int(frames.requests["client_order_id"].nunique()),
        "approved": int(decisions["approved"].astype(bool).sum()),
        "denied": int(len(denied)),
        # Most frequent first, then by name so equal counts print in a stable order.
        "denied_by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "submitted": int(updates.get("OrderSubmitted", 0)),
        "accepted": int(updates.get("OrderAccepted", 0)),
        "rejected": int(updates.get("OrderRejected", 0)),
        "canceled": int(updates.get("OrderCanceled", 0)),
        "expired": int(updates.get("OrderExpired", 0)),
        "fills": int(len(frames.fills)),
        "round_trips": int(len(trips)),
        "trading_state_changes": int(len(frames.state_changes)),
        "dead_letters": int(len(frames.dead_letters)),
    }


def _per_strategy(frames: RunFrames, trips: pd.DataFrame, equity: pd.Series,
                  initial_equity: float) -> dict:
    curves = strategy_pnl_curves(frames.fills, frames.bars, equity.index)
    names = sorted(set(frames.signals["strategy"]) | set(frames.requests["strategy"])
                   | set(frames.fills["strategy"]))
    result = {}
    for name in names:
        pnl = curves.get(name, pd.Series(0.0, index=equity.index))
        # A sleeve is judged as if it had the whole account's capital to itself.
        metrics = performance(initial_equity + pnl, trips[trips["strategy"] == name],
                              initial_equity=initial_equity,
                              fills=frames.fills[frames.fills["strategy"] == name])
        metrics["pnl"] = float(pnl.iloc[-1]) if len(pnl) else 0.0
        metrics["orders"] = int((frames.requests["strategy"] == name).sum())
        result[name] = {key: _plain(value) for key, value in metrics.items()}
    return result


def _latency(frames: RunFrames) -> dict:
    table = latency_summary(hop_latencies(frames))
    return {hop: {f"{column}_us" if column != "count" else column: _plain(value)
                  for column, value in row.items()}
            for hop, row in table.to_dict(orient="index").items()}


def build_summary(frames: RunFrames, initial_equity: float) -> dict:
    """Everything the report shows, as JSON-serialisable data: counts, equity, overall
    and per-strategy metrics (see metrics.py for units) and per-hop latency in µs."""
    trips = round_trips(frames.fills)
    equity = equity_curve(frames.valuations)
    overall = performance(equity, trips, initial_equity=initial_equity, fills=frames.fills)
    return {
        "counts": _order_counts(frames, trips),
        "initial_equity": float(initial_equity),
        "final_equity": float(equity.iloc[-1]) if len(equity) else float(initial_equity),
        "metrics": {key: _plain(value) for key, value in overall.items()},
        "strategies": _per_strategy(frames, trips, equity, initial_equity),
        "latency_us": _latency(frames),
    }


# --- rendering -------------------------------------------------------------------------

_NA = "n/a"


def _pct(value) -> str:
    return _NA if value is None else f"{value * 100:.2f} %"


def _num(value, digits: int = 2) -> str:
    return _NA if value is None else f"{value:,.{digits}f}"


def _ms(value_us) -> str:
    return _NA if value_us is None else f"{value_us / 1_000:.3f}"


# (label, key, format) of the overall metrics, in reading order.
_METRIC_ROWS = (
    ("Total return", "total_return", _pct),
    ("CAGR", "cagr", _pct),
    ("Annual volatility", "annual_volatility", _pct),
    ("Sharpe ratio (annualised, rf 0)", "sharpe", _num),
    ("Sortino ratio (annualised)", "sortino", _num),
    ("Max drawdown", "max_drawdown", _pct),
    ("Max drawdown duration (days)", "max_drawdown_duration_days", _num),
    ("Calmar ratio", "calmar", _num),
    ("Round trips", "trade_count", lambda v: f"{v:,d}"),
    ("Win rate", "win_rate", _pct),
    ("Profit factor", "profit_factor", _num),
    ("Average trade PnL", "avg_trade", _num),
    ("Exposure (time with a position)", "exposure", _pct),
    ("Turnover (traded notional / mean equity)", "turnover", lambda v: f"{_num(v)} x"),
)


def _overview_table(summary: dict) -> Table:
    table = Table(title="Run", title_justify="left")
    table.add_column("Item")
    table.add_column("Value", justify="right")
    initial, final = summary["initial_equity"], summary["final_equity"]
    table.add_row("Initial equity", _num(initial))
    table.add_row("Final equity", _num(final))
    table.add_row("Net PnL", _num(final - initial))
    table.add_row("Bars", f"{summary['counts']['bars']:,d}")
    table.add_row("Signals", f"{summary['counts']['signals']:,d}")
    return table


def _metrics_table(metrics: dict) -> Table:
    table = Table(title="Performance (overall)", title_justify="left")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for label, key, fmt in _METRIC_ROWS:
        value = metrics.get(key)
        table.add_row(label, _NA if value is None else fmt(value))
    return table


def _strategy_table(strategies: dict) -> Table:
    table = Table(title="Performance per strategy (sleeve PnL on the account's capital)",
                  title_justify="left")
    for column in ("Strategy", "PnL", "Return", "Sharpe", "Max DD", "Win rate", "Trips",
                   "Exposure", "Orders"):
        table.add_column(column, justify="left" if column == "Strategy" else "right")
    for name, m in strategies.items():
        table.add_row(name, _num(m["pnl"]), _pct(m["total_return"]), _num(m["sharpe"]),
                      _pct(m["max_drawdown"]), _pct(m["win_rate"]), f"{m['trade_count']:,d}",
                      _pct(m["exposure"]), f"{m['orders']:,d}")
    return table


def _risk_table(counts: dict) -> Table:
    table = Table(title="Risk decisions", title_justify="left")
    table.add_column("Decision / reason denied")
    table.add_column("Orders", justify="right")
    table.add_row("Approved", f"{counts['approved']:,d}")
    table.add_row("Denied", f"{counts['denied']:,d}")
    for reason, count in counts["denied_by_reason"].items():
        table.add_row(f"  denied: {reason}", f"{count:,d}")
    return table


def _flow_table(counts: dict) -> Table:
    table = Table(title="Orders, fills and round trips", title_justify="left")
    table.add_column("Stage")
    table.add_column("Count", justify="right")
    for label, key in (("Order requests", "orders"), ("Submitted to broker", "submitted"),
                       ("Accepted by broker", "accepted"), ("Rejected by broker", "rejected"),
                       ("Canceled", "canceled"), ("Expired", "expired"), ("Fills", "fills"),
                       ("Round trips", "round_trips"),
                       ("Strategy failures", "strategy_failures"),
                       ("Trading state changes", "trading_state_changes"),
                       ("Dead letters", "dead_letters")):
        table.add_row(label, f"{counts[key]:,d}")
    return table


def _latency_table(latency: dict) -> Table:
    table = Table(title="Per-hop latency, wall clock (ms)", title_justify="left")
    for column in ("Hop", "Orders", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "Hop" else "right")
    for hop in (*HOPS, END_TO_END):
        row = latency.get(hop)
        if row is None:
            continue
        label = hop.replace("_to_", " → ").replace("_", " ")
        table.add_row(label if hop != END_TO_END else f"end to end ({label})",
                      f"{row['count']:,d}", _ms(row["p50_us"]), _ms(row["p95_us"]),
                      _ms(row["p99_us"]), _ms(row["max_us"]))
    return table


def render_report(summary: dict, console: Console) -> None:
    """Print the summary as rich tables: run, overall and per-strategy performance, risk
    decisions by reason, the order flow and the per-hop latency in milliseconds."""
    counts = summary["counts"]
    console.print(_overview_table(summary))
    console.print(_metrics_table(summary["metrics"]))
    if summary["strategies"]:
        console.print(_strategy_table(summary["strategies"]))
    console.print(_risk_table(counts))
    console.print(_flow_table(counts))
    console.print(_latency_table(summary["latency_us"]))
