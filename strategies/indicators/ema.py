"""Exponential moving average seeded with a simple average, O(1) per update."""
from __future__ import annotations


class Ema:
    """EMA with smoothing alpha = 2 / (period + 1).

    The first value is the simple mean of the first `period` inputs (the TA-Lib
    convention), so the EMA does not depend on how far back the series happens to start;
    after that, ema = ema + alpha * (x - ema). `update` returns None until `period` values
    have been seen; `value` holds the latest EMA (None during warm-up).
    """

    __slots__ = ("period", "alpha", "value", "_count", "_seed_sum")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self.value: float | None = None
        self._count = 0
        self._seed_sum = 0.0

    def update(self, x: float) -> float | None:
        """Add one value; the EMA, or None while warming up."""
        ema = self.value
        if ema is not None:
            ema = self.value = ema + self.alpha * (x - ema)
            return ema
        self._seed_sum += x
        self._count += 1
        if self._count < self.period:
            return None
        ema = self.value = self._seed_sum / self.period
        return ema
