"""Rolling z-score: how many standard deviations a value sits from its rolling mean."""
from __future__ import annotations

from strategies.indicators.rolling_std import RollingStd


class ZScore:
    """(x - mean) / std over the last `window` values, the current one included.

    Sample std (ddof=1). A flat window (std 0) gives 0.0: no spread, no evidence of a
    stretch. `update` returns the z-score, or None until `window` values have been seen;
    `value` holds the latest, and `mean` and `std` the statistics it was computed from.
    """

    __slots__ = ("window", "value", "mean", "std", "_moments")

    def __init__(self, window: int) -> None:
        self._moments = RollingStd(window)
        self.window = window
        self.value: float | None = None
        self.mean: float | None = None
        self.std: float | None = None

    def update(self, x: float) -> float | None:
        """Add one value; its z-score against the window, or None while warming up."""
        moments = self._moments
        std = moments.update(x)
        if std is None:
            return None
        mean = self.mean = moments.mean
        self.std = std
        z = self.value = (x - mean) / std if std > 0.0 else 0.0
        return z
