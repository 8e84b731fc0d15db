"""The strategy plugin API: what a strategy class looks like to the strategy stage.

A strategy is a class with

- `name`: the name it is configured by (e.g. "sma_cross");
- `Params`: a frozen msgspec Struct of its parameters, every one with a default, that
  rejects unknown keys (subclass `StrategyParams` to get that);
- `__init__(self, params)`: one instance per symbol, so an instance only ever sees one
  symbol's bars, in order;
- `on_bar(self, bar) -> (direction, confidence) | None`: the new target after this bar,
  or None for "no change". Direction is LONG (1), FLAT (0) or SHORT (-1) from
  `schemas.signals`; confidence is a float in 0..1.

Subclassing `Strategy` is a convenience, not a requirement: `strategies.registry`
accepts any class with that shape, so a user's plugin needs nothing from firetape but
msgspec. Strategies may keep any state; they must not read the clock or do I/O, so that a
replay of the same bars gives the same targets.
"""
from __future__ import annotations

from typing import ClassVar

import msgspec

from schemas.market import Bar

Target = tuple[int, float]


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every strategy's Params: frozen, and a misspelt config key is an error.

    Subclasses inherit forbid_unknown_fields; cross-field rules go in __post_init__ and
    raise ValueError naming the field, which msgspec reports as a validation error.
    """


class Strategy:
    """Optional base class for strategies; see the module docstring for the contract."""

    __slots__ = ()

    name: ClassVar[str]
    Params: ClassVar[type[msgspec.Struct]] = StrategyParams

    def __init__(self, params: msgspec.Struct) -> None:
        raise NotImplementedError

    def on_bar(self, bar: Bar) -> Target | None:
        """The new target (direction, confidence) after `bar`, or None for no change."""
        raise NotImplementedError


def clip_confidence(x: float) -> float:
    """`x` limited to 0..1 (a NaN becomes 0: no confidence in an undefined strength)."""
    if x >= 1.0:
        return 1.0
    if x > 0.0:
        return x
    return 0.0
