"""Mean reversion: buy a close stretched far below its rolling mean, exit near the mean."""
from __future__ import annotations

from typing import Literal

from schemas.market import Bar
from schemas.signals import FLAT, LONG, SHORT
from strategies.base import Strategy, StrategyParams, Target, clip_confidence
from strategies.indicators.zscore import ZScore


class MeanReversionParams(StrategyParams, frozen=True, kw_only=True):
    """`window` in bars; `entry_z` > `exit_z` >= 0 in standard deviations."""

    window: int = 20
    entry_z: float = 2.0
    exit_z: float = 0.5
    mode: Literal["zscore", "bollinger"] = "zscore"
    long_only: bool = True

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"`window` must be >= 2, got {self.window}")
        if not self.entry_z > 0.0:
            raise ValueError(f"`entry_z` must be > 0, got {self.entry_z}")
        if not 0.0 <= self.exit_z < self.entry_z:
            raise ValueError(
                f"`exit_z` ({self.exit_z}) must be >= 0 and less than `entry_z` ({self.entry_z})")


class MeanReversion(Strategy):
    """Trade the z-score z = (close - mean) / std over `window` closes (current included,
    sample std; a flat window gives z = 0).

    Entries, from FLAT:
    - mode "zscore": z < -entry_z -> LONG (z > entry_z -> SHORT unless long_only): enter
      while the close is stretched.
    - mode "bollinger": the bands are mean ± k·std with k = entry_z; enter LONG on the bar
      the close comes back inside the lower band (z[t-1] < -k <= z[t]), SHORT on the bar
      it comes back inside the upper band (z[t-1] > k >= z[t]) unless long_only: wait for
      the stretch to end instead of catching a falling price.
    Exits, both modes: a LONG goes FLAT once z > -exit_z (the close is back within exit_z
    std of the mean); a SHORT once z < exit_z. An exit and an opposite entry may happen on
    the same bar, which then flips the target directly.

    Confidence of an entry = |z_stretch| / (2 * entry_z) clipped to 0..1, z_stretch being
    the z that triggered it (z[t] in zscore mode, z[t-1] in bollinger mode). Confidence of
    an exit to FLAT = 1 - |z| / entry_z clipped to 0..1: surer the closer to the mean.
    Only a change of target is returned.
    """

    __slots__ = ("_zscore", "_entry", "_exit", "_bollinger", "_long_only", "_prev_z",
                 "_target")

    name = "mean_reversion"
    Params = MeanReversionParams

    def __init__(self, params: MeanReversionParams) -> None:
        self._zscore = ZScore(params.window)
        self._entry = params.entry_z
        self._exit = params.exit_z
        self._bollinger = params.mode == "bollinger"
        self._long_only = params.long_only
        self._prev_z: float | None = None
        self._target = FLAT

    def on_bar(self, bar: Bar) -> Target | None:
        """Update the z-score with the close; a new target on an entry or exit, else None."""
        z = self._zscore.update(bar.close)
        if z is None:
            return None
        prev_z = self._prev_z
        self._prev_z = z
        current = self._target
        target = current
        confidence = 0.0
        if (target == LONG and z > -self._exit) or (target == SHORT and z < self._exit):
            target = FLAT
            confidence = 1.0 - abs(z) / self._entry
        if target == FLAT:
            entry = self._entry
            if self._bollinger:
                if prev_z is not None:
                    if prev_z < -entry <= z:
                        target, confidence = LONG, -prev_z / (2.0 * entry)
                    elif prev_z > entry >= z and not self._long_only:
                        target, confidence = SHORT, prev_z / (2.0 * entry)
            elif z < -entry:
                target, confidence = LONG, -z / (2.0 * entry)
            elif z > entry and not self._long_only:
                target, confidence = SHORT, z / (2.0 * entry)
        if target == current:
            return None
        self._target = target
        return target, clip_confidence(confidence)
