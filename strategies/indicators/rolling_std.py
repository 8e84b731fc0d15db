"""Rolling mean and sample standard deviation over a fixed window, O(1) per update.

Shared by the z-score and the volatility indicators.
"""
from __future__ import annotations

from math import fsum, sqrt
from sys import float_info

# Recompute exactly once the bound on the accumulated rounding error of the squared
# deviations exceeds this fraction of them (1e-10 keeps the std well inside 1e-9).
_RELATIVE_ERROR = 1e-10
_ERROR_PER_UNIT = 4.0 * float_info.epsilon / _RELATIVE_ERROR


class RollingStd:
    """Mean and sample standard deviation (ddof=1) of the last `window` values.

    Uses Welford's update, with the replace-oldest form once the window is full, rather
    than a running sum of squares, which loses most of its digits when the values are large
    next to their spread (prices). Each update's rounding error is bounded by a few ulps of
    |step| * |values|; the bound is accumulated, and the mean and squared deviations are
    recomputed exactly from the ring buffer when it wraps, or sooner when the bound is no
    longer negligible next to the spread (a near-flat window among large values). So the
    result stays within ~1e-10 of the exact one, at O(1) amortized cost on ordinary data.

    `update` returns the std, or None until `window` values have been seen; `value` holds
    the latest std and `mean` the latest mean (both None during warm-up).
    """

    __slots__ = ("window", "value", "mean", "_buf", "_i", "_count", "_mean", "_m2", "_err")

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2 for a sample std, got {window}")
        self.window = window
        self.value: float | None = None
        self.mean: float | None = None
        self._buf = [0.0] * window
        self._i = 0
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0    # sum of squared deviations from the mean
        self._err = 0.0   # rounding-error bound of _m2, in units of _ERROR_PER_UNIT

    def update(self, x: float) -> float | None:
        """Add one value; the sample std of the window, or None while warming up."""
        n = self.window
        buf = self._buf
        i = self._i
        mean = self._mean
        count = self._count
        if count == n:
            old = buf[i]
            step = x - old
            new_mean = mean + step / n
            m2 = self._m2 + step * (x - new_mean + old - mean)
            err = self._err + abs(step) * (abs(x) + abs(old) + abs(mean))
        else:
            count = self._count = count + 1
            step = x - mean
            new_mean = mean + step / count
            m2 = self._m2 + step * (x - new_mean)
            err = self._err + abs(step) * (abs(x) + abs(mean))
        buf[i] = x
        i += 1
        if i == n:
            i = 0
        if i == 0 or m2 < err * _ERROR_PER_UNIT:
            values = buf if count == n else buf[:count]
            new_mean = fsum(values) / count
            m2 = fsum([(v - new_mean) * (v - new_mean) for v in values])
            err = 0.0
        self._i = i
        self._mean = new_mean
        self._m2 = m2
        self._err = err
        if count < n:
            return None
        # Rounding can push a zero spread a hair below zero.
        std = self.value = sqrt(m2 / (n - 1)) if m2 > 0.0 else 0.0
        self.mean = new_mean
        return std
