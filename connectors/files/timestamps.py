"""Turning a file's timestamp column into integer nanoseconds UTC, and back into text.

Accepted, per column:
- Arrow timestamp or date columns (Parquet, or CSV text Arrow recognises): a zone-aware
  timestamp is converted to UTC; a naive one, or a date, is taken to be UTC already.
- ISO 8601 text ("2024-01-02", "2024-01-02 09:30", "2024-01-02T14:30:00Z",
  "2024-01-02T09:30:00-05:00"): naive means UTC, an offset is converted to UTC.
- Integer or decimal epoch numbers. The unit is chosen once per column from the largest
  magnitude in it: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
  otherwise nanoseconds. (1e11 s is the year 5138 and 1e11 ms is 1973, so real data is
  never ambiguous.) Compact dates such as 20240102 are therefore read as epoch seconds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connectors.files.cells import to_floats

_NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX = np.iinfo(np.int64).max


def epoch_unit(magnitude: float) -> str:
    """The unit ("s", "ms", "us" or "ns") an epoch column whose largest |value| is `magnitude` is in."""
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    if magnitude < 1e17:
        return "us"
    return "ns"


def parse_timestamps(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Return (ts, ok): int64 nanoseconds UTC per row, and which rows parsed (ts is 0 where not)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        try:
            # Arrow keeps zone-aware stamps as UTC instants and naive ones as wall-clock
            # values; naive is UTC by our rule, so the stored integer is right either way.
            ns = column.cast(pa.timestamp("ns", tz=getattr(kind, "tz", None))).cast(pa.int64())
        except pa.ArrowInvalid:  # outside the nanosecond range (before 1677 or after 2262)
            return _parse_text(column.cast(pa.string()))
        return _int_values(ns)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _epoch(column)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return _parse_text(column.cast(pa.string()))
    return np.zeros(len(column), np.int64), np.zeros(len(column), bool)


def _int_values(ints: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    ok = ints.is_valid().to_numpy(zero_copy_only=False)
    return ints.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False), ok


def _epoch(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if pa.types.is_integer(column.type):
        values, ok = _int_values(column.cast(pa.int64()))
        unit = epoch_unit(float(np.abs(values[ok]).max())) if ok.any() else "ns"
        factor = _NS_PER[unit]
        ok &= np.abs(values) <= _INT64_MAX // factor  # e.g. 5e10 s: after 2262, no ns form
        return np.where(ok, values, 0) * factor, ok
    return _epoch_floats(to_floats(column))


def _epoch_floats(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(numbers)
    unit = epoch_unit(float(np.abs(numbers[ok]).max())) if ok.any() else "ns"
    scaled = np.where(ok, numbers, 0.0) * _NS_PER[unit]
    ok &= np.abs(scaled) < 9.2e18
    return np.where(ok, np.rint(scaled), 0).astype(np.int64), ok


def _parse_text(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    text = pc.utf8_trim_whitespace(column)
    # A text column can hold epoch numbers (e.g. when a bad cell elsewhere made the
    # reader fall back to text); rows that read as numbers are epochs, the rest ISO.
    numbers = to_floats(text)
    numeric = np.isfinite(numbers)
    ts, ok = _epoch_floats(numbers)
    if numeric.any():
        ts = _exact_whole_epochs(text, numbers[numeric], ts, ok)
    if numeric.all():
        return ts, ok
    iso = pd.to_datetime(pd.Series(text.to_numpy(zero_copy_only=False), dtype=object),
                         utc=True, format="ISO8601", errors="coerce")
    wall = iso.dt.tz_localize(None).to_numpy()
    unit = np.datetime_data(wall.dtype)[0]
    raw = wall.view(np.int64)
    factor = _NS_PER[unit]
    iso_ok = ~np.isnat(wall) & (np.abs(raw) <= _INT64_MAX // factor) & ~numeric
    ts = np.where(iso_ok, raw * np.where(iso_ok, factor, 0), ts)
    return ts.astype(np.int64), ok | iso_ok


def _exact_whole_epochs(text: pa.Array, numbers: np.ndarray, ts: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Redo whole-number epochs in integer arithmetic: nanosecond epochs have 19 digits,
    more than a float64 holds exactly."""
    whole = pc.match_substring_regex(text, r"^[+-]?[0-9]{1,19}$").fill_null(False)
    try:
        exact = pc.if_else(whole, text, pa.scalar(None, pa.string())).cast(pa.int64())
    except pa.ArrowInvalid:  # beyond int64: the float result stands (and fails the range check)
        return ts
    factor = _NS_PER[epoch_unit(float(np.abs(numbers).max()))]
    use = whole.to_numpy(zero_copy_only=False) & ok
    return np.where(use, exact.fill_null(0).to_numpy(zero_copy_only=False) * np.where(use, factor, 0), ts)


def format_utc(ts: np.ndarray | int) -> np.ndarray | str:
    """ISO 8601 text ending in "Z" for nanosecond timestamps: seconds precision when every
    value is a whole second (bars usually are), nanoseconds otherwise."""
    values = np.asarray(ts, dtype=np.int64)
    unit = "s" if not (values % 1_000_000_000).any() else "ns"
    text = np.char.add(np.datetime_as_string(values.astype("datetime64[ns]"), unit=unit), "Z")
    return str(text) if np.ndim(ts) == 0 else text
