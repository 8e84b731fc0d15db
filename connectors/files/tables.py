"""Reading one CSV or Parquet bar file into an Arrow table with the canonical column names.

Column names are matched case-insensitively; "date", "datetime" and "time" are accepted
for "timestamp". Extra columns are ignored. No value is checked here (see validate.py),
but every row can be traced back to its place in the file through `RawTable.locate`.
"""
from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.files.discover import bar_suffix, is_csv
from connectors.files.frame import VALUE_COLUMNS
from connectors.files.validate import BarDataError

TIMESTAMP_ALIASES = ("timestamp", "datetime", "date", "time")


@dataclass(frozen=True)
class RawTable:
    """A file's bar columns, renamed to timestamp, [symbol], open, high, low, close, volume.

    `unit` is "line" (CSV; the header is line 1) or "row" (Parquet; 1-based), and
    `locate(records)` turns 0-based record numbers into those line or row numbers.
    """

    table: pa.Table
    unit: str
    locate: Callable[[Sequence[int]], list[int]]


def read_table(path: Path) -> RawTable:
    """Read the bar columns of one CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) file."""
    return _read_csv(path) if is_csv(path) else _read_parquet(path)


def canonical_columns(names: Sequence[str], path: Path, header_line: int | None) -> dict[str, str]:
    """Map canonical column names to the file's own; raise BarDataError if one is missing."""
    unit = "line" if header_line is not None else "row"
    by_lower: dict[str, str] = {}
    for name in names:
        key = name.strip().lstrip("\ufeff").lower()
        if key in by_lower:
            raise BarDataError(str(path), f"ambiguous columns {by_lower[key]!r} and {name!r}",
                               header_line, unit)
        by_lower[key] = name
    stamps = [a for a in TIMESTAMP_ALIASES if a in by_lower]
    if len(stamps) > 1:
        raise BarDataError(str(path), f"ambiguous timestamp columns: {', '.join(stamps)}",
                           header_line, unit)
    mapping = {"timestamp": by_lower[stamps[0]]} if stamps else {}
    for canonical in ("symbol", *VALUE_COLUMNS):
        if canonical in by_lower:
            mapping[canonical] = by_lower[canonical]
    missing = [c for c in ("timestamp", *VALUE_COLUMNS) if c not in mapping]
    if missing:
        found = ", ".join(names) if names else "none"
        raise BarDataError(str(path), f"missing column{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)} (columns found: {found})", header_line, unit)
    return mapping


def _select(table: pa.Table, mapping: dict[str, str]) -> pa.Table:
    return table.select(list(mapping.values())).rename_columns(list(mapping))


def _read_parquet(path: Path) -> RawTable:
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        raise BarDataError(str(path), f"not a readable Parquet file ({exc})") from exc
    mapping = canonical_columns(names, path, None)
    table = pq.read_table(path, columns=list(mapping.values()))
    return RawTable(_select(table, mapping), "row", lambda records: [r + 1 for r in records])


def _read_csv(path: Path) -> RawTable:
    header_line, header = next(_csv_rows(path), (1, []))
    mapping = canonical_columns(header, path, header_line)
    wanted = list(mapping.values())
    # Typing the value columns up front makes Arrow fail loudly on a bad cell instead of
    # guessing from the first block; the slow all-text read then finds which cell it was.
    fast = {mapping[c]: pa.float64() for c in VALUE_COLUMNS}
    if "symbol" in mapping:
        fast[mapping["symbol"]] = pa.string()
    try:
        table = _arrow_csv(path, wanted, fast)
    except pa.ArrowInvalid:
        try:
            table = _arrow_csv(path, wanted, dict.fromkeys(wanted, pa.string()))
        except pa.ArrowInvalid as exc:
            raise _layout_error(path, len(header), exc) from exc
    return RawTable(_select(table, mapping), "line", lambda records: _csv_lines(path, records))


def _arrow_csv(path: Path, columns: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    options = pacsv.ConvertOptions(column_types=types, include_columns=columns)
    # Arrow picks gzip from the ".gz" name by itself.
    return pacsv.read_csv(path, convert_options=options)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each non-blank CSV record, header included.

    Blank lines are skipped exactly as Arrow skips them, so record k here is row k there.
    """
    opener = gzip.open if bar_suffix(path) == ".csv.gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        line_after_previous = 0
        for fields in reader:
            start, line_after_previous = line_after_previous + 1, reader.line_num
            if fields:
                yield start, fields


def _csv_lines(path: Path, records: Sequence[int]) -> list[int]:
    """Line numbers of 0-based data records (only used to word an error)."""
    wanted = set(records)
    lines: dict[int, int] = {}
    starts = _record_starts(path)
    next(starts, None)  # the header
    for record, line in enumerate(starts):
        if record in wanted:
            lines[record] = line
            if len(lines) == len(wanted):
                break
    return [lines.get(r, -1) for r in records]


def _record_starts(path: Path) -> Iterator[int]:
    """First line number of each non-blank record.

    Counting raw lines is several times faster than the csv module; it is exact as long
    as no quoted field spans lines, which a line with an odd number of quotes would
    start. If one turns up, count again with the csv module.
    """
    opener = gzip.open if bar_suffix(path) == ".csv.gz" else open
    emitted = 0
    with opener(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.count(b'"') % 2:
                break
            if line.strip(b"\r\n"):
                emitted += 1
                yield number
        else:
            return
    for index, (line, _) in enumerate(_csv_rows(path)):
        if index >= emitted:
            yield line


def _layout_error(path: Path, width: int, exc: Exception) -> BarDataError:
    rows = _csv_rows(path)
    next(rows, None)
    for line, fields in rows:
        if len(fields) != width:
            return BarDataError(str(path), f"expected {width} fields, found {len(fields)}", line)
    return BarDataError(str(path), f"unreadable CSV ({exc})")
