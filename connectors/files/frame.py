"""BarFrame: OHLCV bars held column by column, in the order a feed replays them."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
# Rows a feed converts to Python objects at a time (see BarFrame.row_chunks).
ROW_CHUNK = 8192


@dataclass(frozen=True, eq=False)
class BarFrame:
    """Bars as parallel numpy arrays, sorted by (ts, symbol); every array is a read-only view.

    Symbols are stored as `symbol_code` (int32) indexing into `symbols`, which is sorted,
    so ordering by (ts, code) is ordering by (ts, symbol). Codes rather than an object
    array because a feed turns them into names with one list lookup per row (see
    `rows`), and grouping, merging and validating are integer operations on them.

    `ts` is integer nanoseconds since the epoch, UTC (for a bar, its close time).
    `sources` names where the bars came from (file paths, or "synthetic(...)").
    """

    ts: np.ndarray
    symbol_code: np.ndarray
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.ts)
        fixed = {"ts": np.int64, "symbol_code": np.int32, **dict.fromkeys(VALUE_COLUMNS, np.float64)}
        for name, dtype in fixed.items():
            # A view, so marking it read-only leaves the caller's own array alone.
            arr = np.ascontiguousarray(getattr(self, name), dtype=dtype).view()
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"BarFrame.{name} must be 1-D with {n} rows, got shape {arr.shape}")
            # A frame is shared by every consumer of a replay; nobody may change it in place.
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        symbols = tuple(self.symbols)
        if list(symbols) != sorted(set(symbols)):
            raise ValueError("BarFrame.symbols must be sorted and unique")
        object.__setattr__(self, "symbols", symbols)
        object.__setattr__(self, "sources", tuple(self.sources))
        if n and (self.symbol_code.min() < 0 or self.symbol_code.max() >= len(symbols)):
            raise ValueError("BarFrame.symbol_code out of range of symbols")

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def symbol(self) -> np.ndarray:
        """Per-row symbol names as an object array of Python str."""
        return np.array(self.symbols, dtype=object)[self.symbol_code]

    def rows(self) -> Iterator[tuple[int, str, float, float, float, float, float]]:
        """Yield (ts, symbol, open, high, low, close, volume) as plain Python scalars."""
        for chunk in self.row_chunks():
            yield from chunk

    def row_chunks(self, size: int = ROW_CHUNK
                   ) -> Iterator[Iterator[tuple[int, str, float, float, float, float, float]]]:
        """`rows`, `size` rows at a time: each item iterates one chunk's rows.

        The fast path for a feed building one event per row: `tolist()` converts each
        column in C, instead of a numpy scalar boxing per field per row; chunk by chunk,
        so a long replay never holds every row as Python objects at once.
        """
        names = self.symbols
        for start in range(0, len(self.ts), size):
            stop = start + size
            symbols = [names[c] for c in self.symbol_code[start:stop].tolist()]
            yield zip(self.ts[start:stop].tolist(), symbols, self.open[start:stop].tolist(),
                      self.high[start:stop].tolist(), self.low[start:stop].tolist(),
                      self.close[start:stop].tolist(), self.volume[start:stop].tolist())

    def take(self, index: np.ndarray) -> BarFrame:
        """The rows at `index` (positions or a boolean mask), in that order, same symbols."""
        return BarFrame(ts=self.ts[index], symbol_code=self.symbol_code[index],
                        symbols=self.symbols, sources=self.sources,
                        **{c: getattr(self, c)[index] for c in VALUE_COLUMNS})

    @classmethod
    def empty(cls) -> BarFrame:
        """A frame with no rows and no symbols."""
        return cls(ts=np.empty(0, np.int64), symbol_code=np.empty(0, np.int32), symbols=(),
                   **{c: np.empty(0) for c in VALUE_COLUMNS})

    @classmethod
    def from_columns(cls, ts: np.ndarray, symbol: np.ndarray | Sequence[str], *,
                     sources: Sequence[str] = (), **values: np.ndarray) -> BarFrame:
        """Build a frame from per-row symbol names and unsorted columns; sorts by (ts, symbol).

        No validation of prices beyond dtypes: the file loader validates before it gets here.
        """
        symbols, codes = np.unique(np.asarray(symbol, dtype=object).astype(str), return_inverse=True)
        frame = cls(ts=ts, symbol_code=codes.astype(np.int32), symbols=tuple(symbols.tolist()),
                    sources=sources, **{c: values[c] for c in VALUE_COLUMNS})
        return frame.take(sort_order(frame.ts, frame.symbol_code))

    @classmethod
    def concat(cls, frames: Sequence[BarFrame]) -> BarFrame:
        """Merge frames into one sorted by (ts, symbol).

        Stable: rows with equal (ts, symbol) keep the order of `frames`, so the result is
        deterministic. Duplicates are not rejected here; `load_bars` rejects them with the
        two files named, which only it knows.
        """
        return concat_with_order(frames)[0]

    def to_pandas(self) -> pd.DataFrame:
        """Long format: timestamp (datetime64[ns, UTC]), symbol, open, high, low, close, volume."""
        stamps = pd.to_datetime(self.ts, unit="ns", utc=True)
        return pd.DataFrame({"timestamp": stamps, "symbol": self.symbol,
                             **{c: getattr(self, c) for c in VALUE_COLUMNS}})

    @classmethod
    def from_pandas(cls, df: pd.DataFrame, sources: Sequence[str] = ()) -> BarFrame:
        """Inverse of `to_pandas`; `timestamp` may be datetime64 (naive = UTC) or int ns."""
        stamps = df["timestamp"]
        if pd.api.types.is_datetime64_any_dtype(stamps):
            if stamps.dt.tz is None:
                stamps = stamps.dt.tz_localize("UTC")
            naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
            ts = naive.dt.as_unit("ns").to_numpy().view(np.int64)
        else:
            ts = stamps.to_numpy(dtype=np.int64)
        return cls.from_columns(ts, df["symbol"].to_numpy(dtype=object), sources=sources,
                                **{c: df[c].to_numpy(dtype=np.float64) for c in VALUE_COLUMNS})


def sort_order(ts: np.ndarray, symbol_code: np.ndarray) -> np.ndarray:
    """Stable permutation ordering rows by (ts, symbol code)."""
    # lexsort sorts by the last key first and is stable, so equal keys keep input order.
    return np.lexsort((symbol_code, ts))


def concat_with_order(frames: Sequence[BarFrame]) -> tuple[BarFrame, np.ndarray]:
    """`BarFrame.concat`, also returning the permutation from the frames' rows laid end to
    end to the merged rows (so a caller can tell which frame and row each one came from)."""
    frames = list(frames)
    if not frames:
        return BarFrame.empty(), np.empty(0, np.int64)
    symbols = tuple(sorted({s for f in frames for s in f.symbols}))
    lookup = np.array(symbols, dtype=object)
    # Re-code each frame into the union's symbol list (both sorted, so searchsorted maps them).
    codes = [np.searchsorted(lookup, np.array(f.symbols, dtype=object)).astype(np.int32)[f.symbol_code]
             if f.symbols else np.empty(0, np.int32) for f in frames]
    sources = tuple(dict.fromkeys(s for f in frames for s in f.sources))
    merged = BarFrame(ts=np.concatenate([f.ts for f in frames]), symbol_code=np.concatenate(codes),
                      symbols=symbols, sources=sources,
                      **{c: np.concatenate([getattr(f, c) for f in frames]) for c in VALUE_COLUMNS})
    order = sort_order(merged.ts, merged.symbol_code)
    return merged.take(order), order
