"""Combining several strategies' targets for one symbol into one.

- "none": every strategy trades its own sleeve (exact per-strategy attribution).
- "majority": a direction wins when more than half of the configured strategies hold it
  (a strategy that has not spoken yet counts as FLAT); otherwise FLAT.
- "weighted": the mean of direction x confidence over all configured strategies; above
  `threshold` LONG, below -threshold SHORT (FLAT when long-only), otherwise FLAT.
"""
from __future__ import annotations

from collections import Counter

import msgspec

from schemas.signals import FLAT, LONG, SHORT

MODES = ("none", "majority", "weighted")
ENSEMBLE = "ensemble"


class AggregationConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """[aggregation] in firetape.toml."""

    mode: str = "none"
    threshold: float = 0.3
    long_only: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"aggregation.mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if not 0 <= self.threshold <= 1:
            raise ValueError("aggregation.threshold: must be in [0, 1]")


def majority(votes: dict[str, tuple[int, float]], n_strategies: int) -> int:
    """LONG or SHORT when more than half of `n_strategies` vote for it, else FLAT."""
    counts = Counter(direction for direction, _ in votes.values())
    for direction in (LONG, SHORT):
        if counts[direction] * 2 > n_strategies:
            return direction
    return FLAT


def weighted(votes: dict[str, tuple[int, float]], n_strategies: int, threshold: float,
             long_only: bool) -> int:
    """Confidence-weighted vote over all `n_strategies` (a missing vote counts as FLAT)."""
    score = sum(direction * confidence for direction, confidence in votes.values())
    score /= max(1, n_strategies)
    if score > threshold:
        return LONG
    if score < -threshold and not long_only:
        return SHORT
    return FLAT
