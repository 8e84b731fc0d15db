"""Time-series momentum: follow the return over the last `lookback` bars."""
from __future__ import annotations

from schemas.market import Bar
from schemas.signals import FLAT, LONG, SHORT
from strategies.base import Strategy, StrategyParams, Target, clip_confidence


class MomentumParams(StrategyParams, frozen=True, kw_only=True):
    """`lookback` in bars; `threshold` a return (0.02 = 2%)."""

    lookback: int = 20
    threshold: float = 0.02
    long_only: bool = True

    def __post_init__(self) -> None:
        if self.lookback < 1:
            raise ValueError(f"`lookback` must be >= 1, got {self.lookback}")
        if not self.threshold > 0.0:
            raise ValueError(f"`threshold` must be > 0, got {self.threshold}")


class Momentum(Strategy):
    """r = close[t] / close[t - lookback] - 1.

    r > threshold -> LONG; r < -threshold -> FLAT, or SHORT when `long_only` is false;
    in between the current target stands (a dead band against flip-flopping). Ready from
    the bar with `lookback` earlier closes. Only a change of target is returned.

    Confidence = |r| / (2 * threshold), clipped to 0..1: 0.5 just past the threshold,
    1 at twice the threshold.
    """

    __slots__ = ("_lookback", "_threshold", "_down", "_closes", "_i", "_half_scale",
                 "_target")

    name = "momentum"
    Params = MomentumParams

    def __init__(self, params: MomentumParams) -> None:
        self._lookback = params.lookback
        self._threshold = params.threshold
        self._down = FLAT if params.long_only else SHORT
        self._half_scale = 0.5 / params.threshold
        # Ring buffer of the last `lookback` closes; the slot about to be overwritten holds
        # close[t - lookback].
        self._closes: list[float | None] = [None] * params.lookback
        self._i = 0
        self._target = FLAT

    def on_bar(self, bar: Bar) -> Target | None:
        """Record the close; a new target when the lookback return crosses a threshold."""
        close = bar.close
        closes = self._closes
        i = self._i
        past = closes[i]
        closes[i] = close
        i += 1
        self._i = 0 if i == self._lookback else i
        if past is None:
            return None
        ret = close / past - 1.0
        if ret > self._threshold:
            target = LONG
        elif ret < -self._threshold:
            target = self._down
        else:
            return None
        if target == self._target:
            return None
        self._target = target
        return target, clip_confidence(abs(ret) * self._half_scale)
