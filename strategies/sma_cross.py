"""Moving-average crossover: long when the fast SMA crosses above the slow one."""
from __future__ import annotations

from schemas.market import Bar
from schemas.signals import FLAT, LONG, SHORT
from strategies.base import Strategy, StrategyParams, Target, clip_confidence
from strategies.indicators.sma import Sma


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
    """

    __slots__ = ("_fast", "_slow", "_below", "_gap_scale", "_prev_diff", "_target")

    name = "sma_cross"
    Params = SmaCrossParams

    def __init__(self, params: SmaCrossParams) -> None:
        self._fast = Sma(params.fast)
        self._slow = Sma(params.slow)
        self._below = FLAT if params.long_only else SHORT
        self._gap_scale = 1.0 / params.full_confidence_gap
        self._prev_diff: float | None = None
        self._target = FLAT

    def on_bar(self, bar: Bar) -> Target | None:
        """Update both averages with the close; a new target on a crossing, else None."""
        close = bar.close
        fast = self._fast.update(close)
        slow = self._slow.update(close)
        if slow is None:
            return None
        # fast < slow (validated), so the fast window is full whenever the slow one is.
        diff = fast - slow
        prev = self._prev_diff
        self._prev_diff = diff
        if prev is None:
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
