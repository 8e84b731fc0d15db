"""Historical 1-day VaR and CVaR of a set of positions, from per-symbol close-to-close returns.

Floats are fine here: VaR is an estimate, not accounting. The positions are replayed
through the same historical returns (the last n bars of every held symbol, n the shortest
history among them), which assumes the symbols' bars arrive in step, as they do in a
multi-symbol replay of one bar interval.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from itertools import islice

import numpy as np


class InsufficientHistory(Exception):
    """Too few returns to estimate a tail; the engine denies (fails closed) on it."""


def scenario_pnl(exposures: Mapping[str, float], returns: Mapping[str, deque[float]],
                 min_history: int) -> np.ndarray:
    """The P&L of `exposures` (signed notional per symbol) under each historical day.

    Raises InsufficientHistory naming the symbol with the shortest history when it holds
    fewer than `min_history` returns.
    """
    held = [symbol for symbol, notional in exposures.items() if notional != 0.0]
    if not held:
        return np.zeros(1)
    lengths = {symbol: len(returns.get(symbol, ())) for symbol in held}
    shortest = min(held, key=lengths.__getitem__)
    n = lengths[shortest]
    if n < min_history:
        raise InsufficientHistory(f"{shortest} has {n} returns, needs {min_history}")
    pnl = np.zeros(n)
    for symbol in held:
        history = returns[symbol]
        tail = np.fromiter(islice(history, len(history) - n, None), dtype=float, count=n)
        pnl += exposures[symbol] * tail
    return pnl


def var_cvar(pnl: np.ndarray, confidence: float) -> tuple[float, float]:
    """(VaR, CVaR) as positive losses at `confidence`; 0 when the tail holds no loss.

    VaR is the `confidence` quantile of losses taken at an observed scenario ("higher"),
    the conservative choice for a short history; CVaR is the mean loss at or beyond it.
    """
    losses = np.sort(-np.asarray(pnl, dtype=float))
    if not np.isfinite(losses.sum()):
        raise ValueError("non-finite return in history")
    # numpy.quantile(method="higher") by hand: it costs ten times a sort on 250 points.
    # The epsilon keeps an exact product such as 0.8 * 10 from rounding up a place.
    n = len(losses)
    at = min(n - 1, math.ceil(confidence * (n - 1) - 1e-9))
    var = float(losses[at])
    cvar = float(losses[np.searchsorted(losses, var, side="left"):].mean())
    # the mean of equal losses can land one ulp below them; CVaR is never below VaR
    return max(var, 0.0), max(cvar, var, 0.0)
