"""Marks and close-to-close returns per symbol, kept for the VaR in one 2-D ring buffer.

Each symbol gets a row on its first bar. A row is a ring of `lookback` returns; `seen`
counts every return the row ever took, so the newest return sits at column
`(seen - 1) % lookback` and the row holds `min(seen, lookback)` returns. Keeping every
symbol in one array lets a decision gather the held rows with a single `take` and price
all scenarios with one matrix product, instead of one numpy conversion per symbol.

The ring is stored twice over, side by side: column `c + lookback` repeats column `c`.
Then the last `n` returns of a row are always one plain slice of columns, never a wrap
to stitch together, and so are the `n + 1` columns that two groups of rows one return
apart share (see `columns`): a decision reads its windows with one gather.

The bar handler is the hot path of a backtest (one call per bar per symbol), so
`record_close` writes through memoryviews of the arrays: a memoryview item assignment
costs a fraction of a numpy one.
"""
from __future__ import annotations

import numpy as np

from schemas.market import Bar

_FIRST_ROWS = 64


class MarkHistory:
    """The last close (the mark) per symbol and its recent close-to-close returns."""

    def __init__(self, lookback: int) -> None:
        self.lookback = lookback
        self.marks: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        # Symbols whose mark changed since the valuation last looked (see ExposureBook).
        self.moved: set[str] = set()
        self.first_ts: int | None = None   # ts_event of the first bar recorded
        self._allocate(_FIRST_ROWS)

    def record_close(self, symbol: str, close: float) -> None:
        """Remember a bar's close as the mark and its return over the previous close."""
        marks = self.marks
        previous = marks.get(symbol)
        marks[symbol] = close
        self.moved.add(symbol)
        if previous:   # also skips a zero previous close: no return can be formed
            row = self.rows[symbol]
            seen = self._seen_view[row]
            lookback = self.lookback
            at = 2 * row * lookback + seen % lookback
            data = self._data_view
            data[at] = data[at + lookback] = close / previous - 1.0
            self._seen_view[row] = seen + 1
        elif previous is None:
            self._add_row(symbol)

    def record_bar(self, bar: Bar) -> tuple[()]:
        """`record_close` of a Bar, as a pipeline handler (no output). The risk stage routes
        bars straight here: the bar handler is the hot path of a backtest."""
        if self.first_ts is None:
            self.first_ts = bar.ts_event
        self.record_close(bar.symbol, bar.close)
        return ()

    def count(self, symbol: str) -> int:
        """How many returns `symbol` has (0 when it never had a bar)."""
        row = self.rows.get(symbol)
        return 0 if row is None else min(int(self._seen[row]), self.lookback)

    def window(self, symbol: str, n: int) -> np.ndarray:
        """The last `n` returns of `symbol`, oldest first (n <= count(symbol))."""
        row = self.rows[symbol]
        end = int(self._seen[row]) % self.lookback
        return self._data[row, :self.lookback].take(np.arange(end - n, end), mode="wrap")

    def seed(self, symbol: str, mark: float, returns) -> None:
        """Start `symbol` from an earlier run's mark and returns (oldest first, at most
        `lookback` kept), as if its bars had been recorded here. A symbol that already
        has bars in this run keeps them."""
        if symbol in self.rows:
            return
        self._add_row(symbol)
        kept = list(returns)[-self.lookback:]
        row, lookback = self.rows[symbol], self.lookback
        self._data[row, :len(kept)] = kept
        self._data[row, lookback:lookback + len(kept)] = kept
        self._seen[row] = len(kept)
        self.marks[symbol] = mark
        self.moved.add(symbol)

    def seen(self, rows: np.ndarray) -> np.ndarray:
        """Returns ever recorded by each of `rows` (not capped at the lookback)."""
        return self._seen.take(rows)

    def ring_rows(self, rows: np.ndarray) -> np.ndarray:
        """The ring of each of `rows` (ascending), shape (len(rows), lookback); read only.

        A run of consecutive rows - every symbol held, the common case - is a view, not
        a copy.
        """
        first, last = int(rows[0]), int(rows[-1])
        ring = self._data[:, :self.lookback]
        if last - first + 1 == len(rows):
            return ring[first:last + 1]
        return ring.take(rows, axis=0)

    def columns(self, rows: np.ndarray, count: int, width: int) -> np.ndarray:
        """A copy of `width` (<= lookback + 1) consecutive ring columns of each of `rows`,
        oldest first, the last one holding return number `count` (1-based) of a row that
        has `count` returns. A row with one return fewer has its last `width - 1`
        returns in the first `width - 1` columns."""
        end = (count - 1) % self.lookback + 1 + self.lookback
        return self._data[rows, end - width:end]

    def windows(self, rows: np.ndarray, n: int) -> np.ndarray:
        """The last `n` returns of each of `rows`, oldest first, shape (len(rows), n)."""
        lookback = self.lookback
        ends = self._seen.take(rows) % lookback
        columns = (ends[:, None] + np.arange(-n, 0)) % lookback
        return self._data.ravel().take(rows[:, None] * (2 * lookback) + columns)

    def resize(self, lookback: int) -> None:
        """Keep the newest `lookback` returns of every symbol (as a shorter deque would)."""
        kept = {symbol: self.window(symbol, min(self.count(symbol), lookback))
                for symbol in self.rows}
        self.lookback = lookback
        self._allocate(len(self._seen))
        for symbol, returns in kept.items():
            row = self.rows[symbol]
            self._data[row, :len(returns)] = returns
            self._data[row, lookback:lookback + len(returns)] = returns
            self._seen[row] = len(returns)

    @property
    def row_count(self) -> int:
        """How many symbols have a row."""
        return len(self.rows)

    def _add_row(self, symbol: str) -> None:
        row = len(self.rows)
        if row == len(self._seen):
            data, seen = self._data, self._seen
            self._allocate(2 * row)
            self._data[:row] = data
            self._seen[:row] = seen
        self.rows[symbol] = row

    def _allocate(self, rows: int) -> None:
        self._data = np.zeros((rows, 2 * self.lookback))   # the ring, then its copy
        self._seen = np.zeros(rows, dtype=np.int64)
        self._data_view = memoryview(self._data).cast("B").cast("d")
        self._seen_view = memoryview(self._seen).cast("B").cast("q")
