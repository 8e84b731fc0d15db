"""The event log as pandas frames: one frame per kind of event, the input of every report.

The core, `frames_from_events`, takes decoded events so it can be tested without a log;
`load_frames` reads a log and takes a fast path for bars, which outnumber every other
event by orders of magnitude and of which the report needs only a few fields.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import msgspec
import numpy as np
import pandas as pd

import schemas as s
from topics import codec

BAR_COLUMNS = ("ts_event", "symbol", "close", "ts_wall", "event_id")
SIGNAL_COLUMNS = ("ts_event", "strategy", "symbol", "direction", "confidence", "price",
                  "event_id", "causation_id", "correlation_id", "ts_wall")
FAILURE_COLUMNS = ("ts_event", "strategy", "symbol", "error", "event_id", "ts_wall")
REQUEST_COLUMNS = ("ts_event", "client_order_id", "account", "strategy", "symbol", "side",
                   "quantity", "order_type", "ref_price", "reduce_only", "parent_id",
                   "event_id", "causation_id", "correlation_id", "ts_wall")
DECISION_COLUMNS = ("ts_event", "client_order_id", "account", "strategy", "symbol", "side",
                    "quantity", "approved", "reasons", "reason_list", "trading_state",
                    "event_id", "causation_id", "ts_wall")
STATE_CHANGE_COLUMNS = ("ts_event", "account", "state", "previous", "reason", "until_ts",
                        "event_id", "ts_wall")
UPDATE_COLUMNS = ("ts_event", "type", "client_order_id", "account", "symbol", "reason",
                  "event_id", "ts_wall")
# Fills keep their exact Decimal text beside the floats: round trips recompute PnL exactly.
FILL_COLUMNS = ("ts_event", "strategy", "symbol", "side", "quantity", "price", "commission",
                "exact_quantity", "exact_price", "exact_commission", "client_order_id",
                "fill_id", "account", "event_id", "ts_wall")
POSITION_COLUMNS = ("ts_event", "account", "strategy", "symbol", "quantity", "avg_price",
                    "realized_pnl", "fill_id", "ts_wall")
VALUATION_COLUMNS = ("ts_event", "account", "equity", "cash", "gross_exposure", "net_exposure",
                     "realized_pnl", "unrealized_pnl", "commissions", "high_water_mark",
                     "drawdown", "ts_wall")
DEAD_LETTER_COLUMNS = ("ts_event", "source_topic", "source_partition", "source_offset", "stage",
                       "reason", "event_id", "ts_wall")

# Topics the report reads; quotes, trades, approved orders and control add nothing to it.
REPORT_TOPICS = ("md.bars", "signals", "order.requests", "risk.decisions", "order.updates",
                 "fills", "portfolio", "dlq")


@dataclass(frozen=True)
class RunFrames:
    """Every event of a run the report uses, one DataFrame per kind, in log order.

    `ts_wall` is the wall-clock nanosecond at which the record was appended to the log;
    the per-hop latency is computed from it. Money columns are floats (analytics);
    fills also carry exact_* columns with the Decimal text for exact accounting.
    """

    bars: pd.DataFrame
    signals: pd.DataFrame
    failures: pd.DataFrame
    requests: pd.DataFrame
    decisions: pd.DataFrame
    state_changes: pd.DataFrame
    updates: pd.DataFrame
    fills: pd.DataFrame
    positions: pd.DataFrame
    valuations: pd.DataFrame
    dead_letters: pd.DataFrame


_COLUMNS_OF = {
    "bars": BAR_COLUMNS, "signals": SIGNAL_COLUMNS, "failures": FAILURE_COLUMNS,
    "requests": REQUEST_COLUMNS, "decisions": DECISION_COLUMNS,
    "state_changes": STATE_CHANGE_COLUMNS, "updates": UPDATE_COLUMNS, "fills": FILL_COLUMNS,
    "positions": POSITION_COLUMNS, "valuations": VALUATION_COLUMNS,
    "dead_letters": DEAD_LETTER_COLUMNS,
}


def _bar_row(e: s.Bar, wall: int) -> tuple:
    return (e.ts_event, e.symbol, e.close, wall, e.event_id)


def _signal_row(e: s.SignalGenerated, wall: int) -> tuple:
    return (e.ts_event, e.strategy, e.symbol, e.direction, e.confidence, e.price,
            e.event_id, e.causation_id, e.correlation_id, wall)


def _failure_row(e: s.StrategyFailed, wall: int) -> tuple:
    return (e.ts_event, e.strategy, e.symbol, e.error, e.event_id, wall)


def _request_row(e: s.SubmitOrder, wall: int) -> tuple:
    return (e.ts_event, e.client_order_id, e.account, e.strategy, e.symbol, e.side,
            float(e.quantity), e.order_type, e.ref_price, e.reduce_only, e.parent_id,
            e.event_id, e.causation_id, e.correlation_id, wall)


def _decision_row(e: s.OrderApproved | s.OrderDenied, wall: int) -> tuple:
    approved = isinstance(e, s.OrderApproved)
    reasons = () if approved else tuple(e.reasons)
    # the report groups denials by the check that failed; the text keeps the values
    failed = tuple(check.name for check in e.checks if not check.passed)
    return (e.ts_event, e.client_order_id, e.account, e.strategy, e.symbol, e.side,
            float(e.quantity), approved, "; ".join(reasons), failed, e.trading_state,
            e.event_id, e.causation_id, wall)


def _state_change_row(e: s.TradingStateChanged, wall: int) -> tuple:
    return (e.ts_event, e.account, e.state, e.previous, e.reason, e.until_ts, e.event_id, wall)


def _update_row(e, wall: int) -> tuple:
    return (e.ts_event, type(e).__name__, e.client_order_id, e.account, e.symbol,
            getattr(e, "reason", ""), e.event_id, wall)


def _fill_row(e: s.FillExecuted, wall: int) -> tuple:
    return (e.ts_event, e.strategy, e.symbol, e.side, float(e.quantity), float(e.price),
            float(e.commission), str(e.quantity), str(e.price), str(e.commission),
            e.client_order_id, e.fill_id, e.account, e.event_id, wall)


def _position_row(e: s.PositionChanged, wall: int) -> tuple:
    return (e.ts_event, e.account, e.strategy, e.symbol, float(e.quantity), float(e.avg_price),
            float(e.realized_pnl), e.fill_id, wall)


def _valuation_row(e: s.PortfolioValued, wall: int) -> tuple:
    return (e.ts_event, e.account, float(e.equity), float(e.cash), float(e.gross_exposure),
            float(e.net_exposure), float(e.realized_pnl), float(e.unrealized_pnl),
            float(e.commissions), float(e.high_water_mark), float(e.drawdown), wall)


def _dead_letter_row(e: s.DeadLettered, wall: int) -> tuple:
    return (e.ts_event, e.source_topic, e.source_partition, e.source_offset, e.stage, e.reason,
            e.event_id, wall)


_UPDATE_TYPES = (s.OrderSubmitted, s.OrderAccepted, s.OrderRejected, s.OrderCanceled,
                 s.OrderExpired, s.OrderPartiallyFilled, s.OrderFilled)

# Event type -> (frame name, row builder). Types not listed (quotes, control...) are skipped.
_ROUTES = {
    s.Bar: ("bars", _bar_row),
    s.SignalGenerated: ("signals", _signal_row),
    s.StrategyFailed: ("failures", _failure_row),
    s.SubmitOrder: ("requests", _request_row),
    s.OrderApproved: ("decisions", _decision_row),
    s.OrderDenied: ("decisions", _decision_row),
    s.TradingStateChanged: ("state_changes", _state_change_row),
    **{t: ("updates", _update_row) for t in _UPDATE_TYPES},
    s.FillExecuted: ("fills", _fill_row),
    s.PositionChanged: ("positions", _position_row),
    s.PortfolioValued: ("valuations", _valuation_row),
    s.DeadLettered: ("dead_letters", _dead_letter_row),
}


def _frame(name: str, rows: list[tuple]) -> pd.DataFrame:
    # Fixed columns even when empty, so downstream code never checks for missing columns.
    return pd.DataFrame.from_records(rows, columns=list(_COLUMNS_OF[name]))


def _assemble(rows_of: dict[str, list[tuple]], bars: pd.DataFrame | None = None) -> RunFrames:
    frames = {f.name: _frame(f.name, rows_of.get(f.name, [])) for f in fields(RunFrames)}
    if bars is not None:
        frames["bars"] = bars
    # Fills are read partition by partition; a stable sort on event time puts them in
    # trading order while keeping the log order of fills of the same instant.
    frames["fills"] = frames["fills"].sort_values("ts_event", kind="stable", ignore_index=True)
    frames["valuations"] = frames["valuations"].sort_values("ts_event", kind="stable",
                                                            ignore_index=True)
    return RunFrames(**frames)


def frames_from_events(records: Iterable[tuple[str, s.Event, int]]) -> RunFrames:
    """Build the run's frames from `(topic, event, ts_wall)` triples.

    Events of types the report does not use are ignored; the topic is accepted for
    symmetry with the log but routing is by event type (each type has one topic).
    """
    return _assemble(_collect_rows(records))


def _collect_rows(records: Iterable[tuple[str, s.Event, int]]) -> dict[str, list[tuple]]:
    rows_of: dict[str, list[tuple]] = {name: [] for name in _COLUMNS_OF}
    for _topic, event, wall in records:
        route = _ROUTES.get(type(event))
        if route is not None:
            name, row = route
            rows_of[name].append(row(event, wall))
    return rows_of


class _BarClose(msgspec.Struct, gc=False):
    """The few fields of a Bar the report needs; the decoder skips the rest of the JSON."""

    ts_event: int
    symbol: str
    close: float
    event_id: str


_decode_bar = msgspec.json.Decoder(_BarClose).decode


def _bars_frame(records: Iterable) -> pd.DataFrame:
    """Bars from log records, decoding only the fields the report needs into plain lists
    (building full Bar Structs and a row tuple per bar costs several times more)."""
    ts, symbol, close, wall, event_id = [], [], [], [], []
    for record in records:
        bar = _decode_bar(record.value)
        ts.append(bar.ts_event)
        symbol.append(bar.symbol)
        close.append(bar.close)
        event_id.append(bar.event_id)
        wall.append(record.ts_wall)
    return pd.DataFrame({"ts_event": np.array(ts, dtype=np.int64), "symbol": symbol,
                         "close": np.array(close, dtype=np.float64),
                         "ts_wall": np.array(wall, dtype=np.int64), "event_id": event_id},
                        columns=list(BAR_COLUMNS))


def load_frames(log) -> RunFrames:
    """Read the report's topics from an event log (`read(topic)` yielding records with
    `value` and `ts_wall`) and build the run's frames. Bars take the fast path."""
    bars = _bars_frame(log.read("md.bars"))

    def decoded() -> Iterator[tuple[str, s.Event, int]]:
        for topic in REPORT_TOPICS:
            if topic == "md.bars":
                continue
            decode = codec(topic).decode
            for record in log.read(topic):
                yield topic, decode(record.value), record.ts_wall

    return _assemble(_collect_rows(decoded()), bars=bars)
