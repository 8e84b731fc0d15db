"""load_bars: OHLCV files in, one validated BarFrame out, all or nothing.

Layouts: a long file has a `symbol` column; a file without one holds a single symbol,
named by the file (aapl.csv -> AAPL, see discover.symbol_from_filename). Timestamps are
read as described in timestamps.py (naive = UTC, zone-aware converted, epoch units by
magnitude). Every file is read and checked before anything is returned, so a bad file
anywhere in the call raises BarDataError and nothing is loaded.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.files.cells import to_floats
from connectors.files.discover import bar_files, symbol_from_filename
from connectors.files.frame import VALUE_COLUMNS, BarFrame, concat_with_order, sort_order
from connectors.files.tables import RawTable, read_table
from connectors.files.timestamps import format_utc, parse_timestamps
from connectors.files.validate import BarDataError, FileColumns, first_problem


@dataclass(frozen=True)
class _FileBars:
    path: Path
    raw: RawTable
    frame: BarFrame
    records: np.ndarray  # frame row -> 0-based record in the file, to name rows in errors


def load_bars(paths: Sequence[str | Path] | str | Path) -> BarFrame:
    """Load bar files (CSV, CSV.gz, Parquet) and directories of them into one BarFrame.

    The result is sorted by (ts, symbol) and its `sources` lists the files read. Raises
    BarDataError (a ValueError) naming the file, the line or row, and the reason for
    the first problem found; a (symbol, timestamp) present in two files is one too.
    """
    files = [_read_bar_file(path) for path in bar_files(paths)]
    if len(files) == 1:
        return files[0].frame
    return _merge(files)


def _read_bar_file(path: Path) -> _FileBars:
    """Read and fully validate one file; raise BarDataError at its first bad row."""
    raw = read_table(path)
    cols = _file_columns(raw.table, path)
    problem = first_problem(cols)
    if problem is not None:
        rows = raw.locate([problem.record] + ([problem.related] if problem.related is not None else []))
        reason = "; ".join(problem.reasons)
        if problem.related is not None:
            reason += f" (earlier bar at {raw.unit} {rows[1]})"
        raise BarDataError(str(path), reason, rows[0], raw.unit)
    frame = BarFrame(ts=cols.ts, symbol_code=cols.symbol_code, symbols=cols.symbols,
                     sources=(str(path),), **cols.values)
    order = sort_order(frame.ts, frame.symbol_code)
    return _FileBars(path, raw, frame.take(order), order)


def _file_columns(table: pa.Table, path: Path) -> FileColumns:
    ts, ts_ok = parse_timestamps(table["timestamp"])
    if "symbol" in table.column_names:
        codes, symbols = _symbol_codes(table["symbol"])
    else:
        codes, symbols = np.zeros(table.num_rows, np.int32), (symbol_from_filename(path),)
    values = {c: to_floats(table[c]) for c in VALUE_COLUMNS}
    return FileColumns(ts=ts, ts_ok=ts_ok, symbol_code=codes, symbols=symbols, values=values,
                       raw=lambda column, record: table[column][record].as_py())


def _symbol_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes into the sorted distinct symbols; -1 where the symbol is empty or missing."""
    encoded = pc.dictionary_encode(pc.utf8_trim_whitespace(column.cast(pa.string()))).combine_chunks()
    names = np.array(encoded.dictionary.to_pylist(), dtype=object)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    keep = names != ""
    symbols, inverse = np.unique(names[keep].astype(str), return_inverse=True)
    remap = np.full(len(names) + 1, -1, np.int32)  # slot -1 (the last) catches null symbols
    remap[np.flatnonzero(keep)] = inverse
    return remap[indices], tuple(symbols.tolist())


def _merge(files: list[_FileBars]) -> BarFrame:
    frame, order = concat_with_order([f.frame for f in files])
    # Merged rows are sorted by (ts, symbol), so a bar present in two files sits next to itself.
    same = (frame.ts[1:] == frame.ts[:-1]) & (frame.symbol_code[1:] == frame.symbol_code[:-1])
    if same.any():
        file_of = np.repeat(np.arange(len(files)), [len(f.frame) for f in files])[order]
        record_of = np.concatenate([f.records for f in files])[order]
        i = int(np.argmax(same))
        first, second = files[file_of[i]], files[file_of[i + 1]]
        first_row = first.raw.locate([int(record_of[i])])[0]
        second_row = second.raw.locate([int(record_of[i + 1])])[0]
        symbol = frame.symbols[frame.symbol_code[i]]
        raise BarDataError(str(second.path), f"duplicate bar for {symbol} at {format_utc(frame.ts[i])}: "
                           f"also in {first.path}, {first.raw.unit} {first_row}",
                           second_row, second.raw.unit)
    return frame
