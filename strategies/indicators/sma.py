"""Simple moving average over a fixed window, O(1) per update."""
from __future__ import annotations

from math import fsum


class Sma:
    """Arithmetic mean of the last `window` values.

    `update(x)` returns the mean once `window` values have been seen, else None; the
    latest mean is also in `value` (None during warm-up). The running sum is re-added
    exactly (fsum) each time the ring buffer wraps, so rounding error cannot build up over
    a long replay; that costs O(window) once per `window` updates, i.e. O(1) amortized.
    """

    __slots__ = ("window", "value", "_buf", "_i", "_sum", "_full")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.value: float | None = None
        # Zeros let the warm-up share the steady-state arithmetic (subtracting 0.0).
        self._buf = [0.0] * window
        self._i = 0
        self._sum = 0.0
        self._full = False

    def update(self, x: float) -> float | None:
        """Add one value; the mean of the last `window` values, or None while warming up."""
        buf = self._buf
        i = self._i
        total = self._sum + x - buf[i]
        buf[i] = x
        i += 1
        if i == self.window:
            i = 0
            total = fsum(buf)
            self._full = True
        self._i = i
        self._sum = total
        if self._full:
            mean = self.value = total / self.window
            return mean
        return None
