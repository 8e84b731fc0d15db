"""Rolling volatility: the standard deviation of one-bar log returns."""
from __future__ import annotations

from math import log

from strategies.indicators.rolling_std import RollingStd


class RollingVolatility:
    """Sample std (ddof=1) of the last `window` log returns ln(p[t] / p[t-1]), per bar.

    Not annualised: the consumer knows the bar length. Ready after `window + 1` prices.
    A non-positive or NaN price has no log return, so it is skipped (the value is left as
    it was) instead of raising inside a pipeline stage. `update` returns the volatility, or
    None during warm-up; `value` holds the latest.
    """

    __slots__ = ("window", "value", "_prev", "_returns")

    def __init__(self, window: int = 20) -> None:
        self._returns = RollingStd(window)
        self.window = window
        self.value: float | None = None
        self._prev: float | None = None

    def update(self, price: float) -> float | None:
        """Add one price; the volatility of log returns, or None while warming up."""
        if not price > 0.0:
            return self.value
        prev = self._prev
        self._prev = price
        if prev is None:
            return None
        vol = self._returns.update(log(price / prev))
        if vol is not None:
            self.value = vol
        return vol
