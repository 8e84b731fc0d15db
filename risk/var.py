"""Historical 1-day VaR and CVaR of a set of positions, from per-symbol close-to-close returns.

Floats are fine here: VaR is an estimate, not accounting. The positions are replayed
through the same historical returns (the last n bars of every held symbol, n the shortest
history among them), which assumes the symbols' bars arrive in step, as they do in a
multi-symbol replay of one bar interval.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from risk.history import MarkHistory


# Beyond this many ring alignments one gather of every window beats a product per group.
_MAX_GROUPS = 4
_FLOAT = np.dtype(float)
# Losses below this in magnitude cannot add up to an overflow (n is far below 1e7).
_SAFE = 1e300
_add = np.add.reduce


class InsufficientHistory(Exception):
    """Too few returns to estimate a tail; the engine denies (fails closed) on it."""


def scenario_pnl(exposures: Mapping[str, float], history: MarkHistory,
                 min_history: int) -> np.ndarray:
    """The P&L of `exposures` (signed notional per symbol) under each historical day.

    Symbol by symbol, in the order of `exposures`. Raises InsufficientHistory naming the
    first symbol with the shortest history when it holds fewer than `min_history` returns.
    """
    held = [symbol for symbol, notional in exposures.items() if notional != 0.0]
    if not held:
        return np.zeros(1)
    lengths = {symbol: history.count(symbol) for symbol in held}
    shortest = min(held, key=lengths.__getitem__)
    n = lengths[shortest]
    if n < min_history:
        raise InsufficientHistory(f"{shortest} has {n} returns, needs {min_history}")
    pnl = np.zeros(n)
    for symbol in held:
        pnl += exposures[symbol] * history.window(symbol, n)
    return pnl


def held_scenario_pnl(exposure: np.ndarray, history: MarkHistory,
                      min_history: int) -> np.ndarray | None:
    """`scenario_pnl` for a signed exposure per history row, as matrix products.

    None when some held row has fewer than `min_history` returns: the caller then asks
    `scenario_pnl`, which names the symbol. The sum over symbols runs row by row in a
    fixed order (see `_combine`), so a run replays bit for bit on any machine.
    """
    # Few numpy calls on purpose: at 100 held symbols each costs about as much as the
    # arithmetic it does.
    (rows,) = exposure.nonzero()
    if not len(rows):
        return np.zeros(1)
    # Python's min/max over a short list: a numpy reduction costs more in call overhead
    # than the comparisons themselves at a hundred rows.
    seen_list = history.seen(rows).tolist()
    fewest, most = min(seen_list), max(seen_list)
    n = min(fewest, history.lookback)
    if n < min_history:
        return None
    held = exposure.take(rows)
    if fewest == most:   # in step, as in a replay between two timestamps
        block = history.columns(rows, fewest, n)
        block *= held[:, None]
        return np.add.reduce(block, axis=0)
    if most - fewest == 1:
        # Mid-timestamp in a replay: the symbols before this one in the replay order have
        # this bar's return and the rest not yet. Rows are numbered in that order, so the
        # rows with `most` returns usually come first; then one gather of n + 1 columns
        # holds both groups' windows, one column apart.
        split = seen_list.count(most)
        if seen_list.index(fewest) == split:
            block = history.columns(rows, most, n + 1)
            block *= held[:, None]
            # As `_grouped_pnl` adds them: the group with fewer returns first. A sum of
            # numpy's reduction starts from +0.0 and is never -0.0, so it equals 0.0 + it.
            pnl = np.add.reduce(block[split:, :n], axis=0)
            pnl += np.add.reduce(block[:split, 1:], axis=0)
            return pnl
    return _grouped_pnl(rows, held, history, history.seen(rows), fewest, most, n)


def _grouped_pnl(rows: np.ndarray, held: np.ndarray, history: MarkHistory, seen: np.ndarray,
                 fewest: int, most: int, n: int) -> np.ndarray:
    """The scenario P&L when the held rows are out of step in any other way: one product
    per group of rows with as many returns, each then aligned on its window."""
    lookback = history.lookback
    counts = (fewest, most) if most - fewest == 1 else np.unique(seen).tolist()
    if len(counts) > _MAX_GROUPS:
        return _combine(held, history.windows(rows, n))
    pnl = np.zeros(n)
    for count in counts:
        member = seen == count
        pnl += _window(_combine(held[member], history.ring_rows(rows[member])),
                       count % lookback, n)
    return pnl


def _combine(exposure: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Sum over rows of exposure x returns. Not `exposure @ returns`: BLAS picks its kernel
    (and so its summation order) per CPU, and a run copied to another machine must replay
    byte for byte. A reduction over axis 0 adds the rows one after another everywhere."""
    return (exposure[:, None] * returns).sum(axis=0)


def _window(ring_pnl: np.ndarray, end: int, n: int) -> np.ndarray:
    """The `n` ring columns ending before column `end`, oldest first."""
    start = end - n
    if start >= 0:
        return ring_pnl[start:end]
    return np.concatenate((ring_pnl[start:], ring_pnl[:end]))


def var_cvar(pnl: np.ndarray, confidence: float) -> tuple[float, float]:
    """(VaR, CVaR) as positive losses at `confidence`; 0 when the tail holds no loss.

    VaR is the `confidence` quantile of losses taken at an observed scenario ("higher"),
    the conservative choice for a short history; CVaR is the mean loss at or beyond it.
    """
    losses = np.negative(pnl) if pnl.dtype == _FLOAT else np.negative(pnl, dtype=float)
    losses.sort()
    n = len(losses)
    # Sorted, a NaN is last and an infinity first or last; and below _SAFE in magnitude
    # no sum of n losses can overflow, so the ends alone prove the sum finite.
    if not (-_SAFE < losses.item(0) and losses.item(n - 1) < _SAFE):
        if not math.isfinite(losses.sum()):
            raise ValueError("non-finite return in history")
    # numpy.quantile(method="higher") by hand: it costs ten times a sort on 250 points.
    # The epsilon keeps an exact product such as 0.8 * 10 from rounding up a place.
    at = min(n - 1, math.ceil(confidence * (n - 1) - 1e-9))
    var = losses.item(at)
    # The tail starts at the first loss equal to VaR; it is nearly always VaR's own.
    first = at
    if first and losses.item(first - 1) == var:
        first = int(losses.searchsorted(var, side="left"))
    # sum / count is what ndarray.mean computes, without its bookkeeping; add.reduce is
    # what ndarray.sum calls, without its Python wrapper
    cvar = float(_add(losses[first:])) / (n - first)
    # the mean of equal losses can land one ulp below them; CVaR is never below VaR
    return max(var, 0.0), max(cvar, var, 0.0)
