"""Moving-average crossover: long when the fast SMA crosses above the slow one."""
from __future__ import annotations

from math import fsum

from schemas.market import Bar
from schemas.signals import FLAT, LONG, SHORT
from strategies.base import Strategy, StrategyParams, Target, clip_confidence


class SmaCrossParams(StrategyParams, frozen=True, kw_only=True):
    """fast < slow, both in bars, on closes. `full_confidence_gap`: the gap between the
    averages, as a fraction of the slow one, at which confidence reaches 1."""

    fast: int = 10
    slow: int = 30
    long_only: bool = True
    full_confidence_gap: float = 0.005

    def __post_init__(self) -> None:
        if self.fast < 1:
            raise ValueError(f"`fast` must be >= 1, got {self.fast}")
        if self.fast >= self.slow:
            raise ValueError(f"`fast` ({self.fast}) must be less than `slow` ({self.slow})")
        if not self.full_confidence_gap > 0.0:
            raise ValueError(
                f"`full_confidence_gap` must be > 0, got {self.full_confidence_gap}")


class SmaCross(Strategy):
    """Trade the crossings of diff = SMA(fast) - SMA(slow) of the close.

    A cross above on bar t is diff[t-1] <= 0 < diff[t]; a cross below is diff[t-1] >= 0 >
    diff[t]; both diffs need full windows, so the first possible cross is on the bar after
    the slow window fills. Cross above -> LONG; cross below -> FLAT, or SHORT when
    `long_only` is false. Only a change of target is returned.

    Confidence = |diff| / SMA(slow) / full_confidence_gap, clipped to 0..1: how far apart
    the averages already are on the crossing bar.

    The two averages are `strategies.indicators.sma.Sma`s, their updates written out here: this runs once per bar
    per symbol, and two method calls cost more than the arithmetic. Each keeps Sma's
    arithmetic exactly (a running sum, re-added with fsum when its ring wraps), so the
    averages are bit for bit those of `Sma`.
    """

    __slots__ = ("_fast_buf", "_slow_buf", "_fast_i", "_slow_i",
                 "_fast_sum", "_slow_sum", "_fast_n", "_slow_n", "_below", "_gap_scale",
                 "_prev_diff", "_target")

    name = "sma_cross"
    Params = SmaCrossParams

    def __init__(self, params: SmaCrossParams) -> None:
        # 1 <= fast < slow: SmaCrossParams validates it.
        self._fast_n, self._slow_n = params.fast, params.slow
        self._fast_buf = [0.0] * params.fast
        self._slow_buf = [0.0] * params.slow
        self._fast_i = self._slow_i = 0
        self._fast_sum = self._slow_sum = 0.0
        self._below = FLAT if params.long_only else SHORT
        self._gap_scale = 1.0 / params.full_confidence_gap
        # None until the slow window has filled once (the fast one fills first).
        self._prev_diff: float | None = None
        self._target = FLAT

    def on_bar(self, bar: Bar) -> Target | None:
        """Update both averages with the close; a new target on a crossing, else None."""
        close = bar.close
        # Sma.update of the fast average
        buf = self._fast_buf
        i = self._fast_i
        fast = self._fast_sum + close - buf[i]
        buf[i] = close
        i += 1
        if i == self._fast_n:
            i = 0
            fast = fsum(buf)
        self._fast_i = i
        self._fast_sum = fast
        # Sma.update of the slow average
        buf = self._slow_buf
        i = self._slow_i
        slow = self._slow_sum + close - buf[i]
        buf[i] = close
        i += 1
        if i == self._slow_n:
            i = 0
            slow = fsum(buf)
            if self._prev_diff is None:   # the slow window is full from now on
                self._prev_diff = _FILLED
        self._slow_i = i
        self._slow_sum = slow
        prev = self._prev_diff
        if prev is None:
            return None
        # fast < slow (validated), so the fast window is full whenever the slow one is.
        slow /= self._slow_n
        diff = fast / self._fast_n - slow
        self._prev_diff = diff
        if prev is _FILLED:
            return None
        if prev <= 0.0 < diff:
            target = LONG
        elif prev >= 0.0 > diff:
            target = self._below
        else:
            return None
        if target == self._target:
            return None
        self._target = target
        return target, clip_confidence(abs(diff) / slow * self._gap_scale)


# The first diff has no predecessor: a marker, not a number, until the next bar.
_FILLED = object()
