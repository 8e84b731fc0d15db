"""Relative strength index with Wilder smoothing, O(1) per update."""
from __future__ import annotations


class Rsi:
    """Wilder's RSI over `period` price changes, in 0..100.

    Average gain and loss start as the simple means of the first `period` changes (so
    `period + 1` prices), then follow Wilder's smoothing avg = (avg * (period - 1) + x) /
    period. With no average loss the RSI is 100, or 50 when the prices did not move at all
    (no evidence either way). `update` returns None during warm-up; `value` holds the latest.
    """

    __slots__ = ("period", "value", "_prev", "_count", "_avg_gain", "_avg_loss")

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        self.value: float | None = None
        self._prev: float | None = None
        self._count = 0
        self._avg_gain = 0.0
        self._avg_loss = 0.0

    def update(self, price: float) -> float | None:
        """Add one price; the RSI, or None while warming up."""
        prev = self._prev
        self._prev = price
        if prev is None:
            return None
        change = price - prev
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        n = self.period
        if self._count < n:
            self._avg_gain += gain
            self._avg_loss += loss
            self._count += 1
            if self._count < n:
                return None
            avg_gain = self._avg_gain = self._avg_gain / n
            avg_loss = self._avg_loss = self._avg_loss / n
        else:
            avg_gain = self._avg_gain = (self._avg_gain * (n - 1) + gain) / n
            avg_loss = self._avg_loss = (self._avg_loss * (n - 1) + loss) / n
        if avg_loss == 0.0:
            rsi = 100.0 if avg_gain > 0.0 else 50.0
        else:
            rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
        self.value = rsi
        return rsi
