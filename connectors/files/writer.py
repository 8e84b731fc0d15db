"""write_bars: a BarFrame out to long-format CSV or Parquet, readable again by load_bars."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.files.discover import bar_suffix
from connectors.files.frame import PRICE_COLUMNS, BarFrame
from connectors.files.timestamps import format_utc


def write_bars(frame: BarFrame, path: str | Path) -> Path:
    """Write `frame` in long format (timestamp, symbol, open, high, low, close, volume).

    The format follows the suffix: .csv, .csv.gz (gzip) or .parquet/.pq. CSV timestamps
    are ISO 8601 UTC with a "Z"; Parquet keeps them as timestamp[ns, UTC]. Volumes that
    are all whole numbers are written as integers. Returns the path written.
    """
    path = Path(path)
    suffix = bar_suffix(path)
    if suffix is None:
        raise ValueError(f"{path}: cannot tell the format; use .csv, .csv.gz, .parquet or .pq")
    volume = frame.volume
    if np.all(np.isfinite(volume)) and np.all(volume == np.round(volume)):
        volume = volume.astype(np.int64)
    columns = {
        "symbol": _take_text(list(frame.symbols), frame.symbol_code),
        **{c: pa.array(getattr(frame, c)) for c in PRICE_COLUMNS},
        "volume": pa.array(volume),
    }
    if suffix in (".parquet", ".pq"):
        stamps = pa.array(frame.ts, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
        pq.write_table(pa.table({"timestamp": stamps, **columns}), path)
        return path
    # Many symbols share each timestamp: format the distinct ones, then fan out.
    distinct, index = np.unique(frame.ts, return_inverse=True)
    stamps = _take_text(format_utc(distinct).tolist() if len(frame) else [], index)
    table = pa.table({"timestamp": stamps, **columns})
    # Arrow quotes header names whatever the quoting style; write a plain header ourselves.
    header = (",".join(table.column_names) + "\n").encode()
    # Unquoted unless a symbol needs it, so the file stays small and greppable.
    awkward = any(ch in name for name in frame.symbols for ch in ',"\r\n')
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed" if awkward else "none")
    stream = pa.CompressedOutputStream(str(path), "gzip") if suffix == ".csv.gz" else pa.OSFile(str(path), "wb")
    with stream as sink:
        sink.write(header)
        pacsv.write_csv(table, sink, write_options=options)
    return path


def _take_text(values: list[str], index: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(index.astype(np.int64)))
