"""Checks that one file's bars are usable, and the error that says where they are not.

Every check is a vectorised mask over the file's rows; the error reports the first
offending row (with every reason that applies to it), so fixing a file is a loop of
"fix the line it names, run again" rather than a hunt.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from connectors.files.frame import PRICE_COLUMNS, VALUE_COLUMNS
from connectors.files.timestamps import format_utc


class BarDataError(ValueError):
    """A bar file that cannot be loaded: names the file, the row (when there is one) and why.

    `row` is the line number for CSV (the header is line 1) and the 1-based row for
    Parquet; `where` says which ("line 7", "row 6").
    """

    def __init__(self, path: str, reason: str, row: int | None = None, unit: str = "line") -> None:
        self.path = str(path)
        self.reason = reason
        self.row = row
        self.where = f"{unit} {row}" if row is not None else None
        super().__init__(f"{self.path}, {self.where}: {reason}" if self.where else f"{self.path}: {reason}")


@dataclass(frozen=True)
class FileColumns:
    """One file's columns in file order, as parsed, before any check.

    `symbol_code` is -1 where the symbol is missing; `ts_ok` is False where the timestamp
    did not parse; value columns hold NaN where a cell was empty or not a number.
    `raw(column, row)` gives the original cell, only ever called for the reported row.
    """

    ts: np.ndarray
    ts_ok: np.ndarray
    symbol_code: np.ndarray
    symbols: tuple[str, ...]
    values: Mapping[str, np.ndarray]
    raw: Callable[[str, int], object]


@dataclass(frozen=True)
class Problem:
    """The first bad record (0-based, in file order) and every reason it is bad.

    `related` is another record the reasons refer to (the earlier bar of a duplicate or
    out-of-order pair), so the message can name its line too.
    """

    record: int
    reasons: tuple[str, ...]
    related: int | None = None


def first_problem(cols: FileColumns) -> Problem | None:
    """Run every check; return the earliest offending record, or None if the file is clean."""
    n = len(cols.ts)
    if n == 0:
        return None
    v = cols.values
    finite = {c: np.isfinite(v[c]) for c in VALUE_COLUMNS}
    # Each entry: (mask of bad rows, reason for a row). Comparisons with NaN are False,
    # so a missing value is reported once, as missing, not again as "below low".
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (cols.symbol_code < 0, lambda i: "symbol is empty"),
        (~cols.ts_ok, lambda i: f"unparseable timestamp {_cell(cols, 'timestamp', i)}"),
    ]
    for c in VALUE_COLUMNS:
        checks.append((~finite[c], lambda i, c=c: f"{c} is empty or not a number ({_cell(cols, c, i)})"))
    for c in PRICE_COLUMNS:
        checks.append((v[c] <= 0, lambda i, c=c: f"{c} {v[c][i]:g} is not positive"))
    high, low = v["high"], v["low"]
    checks += [
        (high < low, lambda i: f"high {high[i]:g} is below low {low[i]:g}"),
        (high < v["open"], lambda i: f"high {high[i]:g} is below open {v['open'][i]:g}"),
        (high < v["close"], lambda i: f"high {high[i]:g} is below close {v['close'][i]:g}"),
        (low > v["open"], lambda i: f"low {low[i]:g} is above open {v['open'][i]:g}"),
        (low > v["close"], lambda i: f"low {low[i]:g} is above close {v['close'][i]:g}"),
        (v["volume"] < 0, lambda i: f"volume {v['volume'][i]:g} is negative"),
    ]
    previous, step = _previous_bar_of_symbol(cols)
    checks += [
        (step == 0, lambda i: f"duplicate timestamp {format_utc(cols.ts[i])} for "
                              f"{cols.symbols[cols.symbol_code[i]]}"),
        (step < 0, lambda i: f"timestamp {format_utc(cols.ts[i])} for "
                             f"{cols.symbols[cols.symbol_code[i]]} is earlier than the bar "
                             f"before it ({format_utc(cols.ts[previous[i]])}); rows must be "
                             "in time order per symbol"),
    ]
    firsts = [int(np.argmax(mask)) if mask.any() else n for mask, _ in checks]
    record = min(firsts)
    if record == n:
        return None
    reasons = tuple(reason(record) for (mask, reason) in checks if mask[record])
    related = int(previous[record]) if step[record] <= 0 and previous[record] >= 0 else None
    return Problem(record, reasons, related)


def _previous_bar_of_symbol(cols: FileColumns) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the record of the same symbol just before it in the file (-1 if none),
    and the sign-carrying step ts - ts_previous (1 where there is no previous bar).

    Rows whose symbol or timestamp is bad take no part: they are reported themselves.
    """
    n = len(cols.ts)
    previous = np.full(n, -1, np.int64)
    step = np.ones(n, np.int64)
    usable = np.flatnonzero(cols.ts_ok & (cols.symbol_code >= 0))
    # A stable sort by symbol keeps file order inside each symbol.
    order = usable[np.argsort(cols.symbol_code[usable], kind="stable")]
    same = cols.symbol_code[order[1:]] == cols.symbol_code[order[:-1]]
    later, earlier = order[1:][same], order[:-1][same]
    previous[later] = earlier
    step[later] = np.sign(cols.ts[later] - cols.ts[earlier])
    return previous, step


def _cell(cols: FileColumns, column: str, record: int) -> str:
    value = cols.raw(column, record)
    return "empty" if value is None or (isinstance(value, str) and not value.strip()) else repr(value)
