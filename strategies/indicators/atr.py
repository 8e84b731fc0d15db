"""Average true range with Wilder smoothing, O(1) per update."""
from __future__ import annotations


class Atr:
    """Wilder's ATR over `period` bars, in price units.

    True range is max(high - low, |high - prev close|, |low - prev close|); the first bar
    has no previous close, so its true range is high - low. The ATR starts as the simple
    mean of the first `period` true ranges, then atr = (atr * (period - 1) + tr) / period.
    `update(high, low, close)` returns None during warm-up; `value` holds the latest.
    """

    __slots__ = ("period", "value", "_prev_close", "_count", "_sum")

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        self.value: float | None = None
        self._prev_close: float | None = None
        self._count = 0
        self._sum = 0.0

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar; the ATR, or None while warming up."""
        prev_close = self._prev_close
        self._prev_close = close
        true_range = high - low
        if prev_close is not None:
            up = abs(high - prev_close)
            down = abs(low - prev_close)
            if up > true_range:
                true_range = up
            if down > true_range:
                true_range = down
        atr = self.value
        n = self.period
        if atr is not None:
            atr = self.value = (atr * (n - 1) + true_range) / n
            return atr
        self._sum += true_range
        self._count += 1
        if self._count < n:
            return None
        atr = self.value = self._sum / n
        return atr
