"""The committed positions valued at their marks, kept current incrementally.

A decision needs the gross notional and the VaR exposure of every committed position
(fills plus open orders). Summing them afresh costs a Decimal conversion and product per
held symbol per decision; instead each symbol's value is kept and redone only when its
committed quantity changes (a fill or an open order) or its mark moves (a bar).

Exactness. A mark is the shortest decimal that round-trips the close, Decimal(repr(close)).
For a close that is a whole number of micro-units (k / 10**6 == close, as every cent or
tick price is) that decimal equals k / 10**6 exactly, so an integral quantity q gives the
notional |q| * k micro-units as a plain int - no repr, no Decimal - and the exposure
(q * k) / 10**6 with int true division, which rounds correctly just as float() of the
Decimal product does. A position that does not fit (fractional or huge quantity, a close
that is not on the micro grid, no valid close so the fill price is the mark, no price at
all) is "irregular": while one is held the decision takes the original per-symbol path.
"""
from __future__ import annotations

from decimal import Decimal

import numpy as np

from risk.history import MarkHistory

MICRO_PLACES = 6
MICROS = 10**MICRO_PLACES
# Bounds of the fast path. A close below 1e9 keeps k below 2**53 (exact as a float
# product) and, with a quantity exponent >= -6, every product the original Decimal sum
# forms has at most 12 decimal places; `exact_sum_fits` checks the 28-digit precision.
_MAX_CLOSE = 1e9
_MAX_QUANTITY = 10**12
_MIN_EXPONENT = -6
MIN_TERM_EXPONENT = 2 * _MIN_EXPONENT


class ExposureBook:
    """Per-symbol committed quantity and, for regular positions, notional and exposure."""

    def __init__(self, history: MarkHistory) -> None:
        self.history = history
        self.committed: dict[str, Decimal] = {}   # nonzero only
        self.irregular: set[str] = set()
        self.gross_micros = 0                     # sum of |q| * k over regular positions
        self._quantity: dict[str, int] = {}       # integral committed quantity, regular only
        self._valued: dict[str, tuple[float, int]] = {}   # symbol -> (close, micros)
        self._exposure = np.zeros(0)              # signed float notional by history row
        # Written through a memoryview: an item assignment costs half a numpy one.
        self._exposure_view = memoryview(self._exposure)

    def set_committed(self, symbol: str, quantity: Decimal) -> None:
        """A symbol's committed quantity changed: revalue it now."""
        if quantity:
            self.committed[symbol] = quantity
            whole = _whole(quantity)
            if whole is None:
                self._quantity.pop(symbol, None)
            else:
                self._quantity[symbol] = whole
        else:
            self.committed.pop(symbol, None)
            self._quantity.pop(symbol, None)
        self._revalue(symbol)

    def refresh(self) -> None:
        """Revalue the held symbols whose marks moved since the last refresh."""
        moved = self.history.moved
        if not moved:
            return
        valued, quantities = self._valued, self._quantity
        marks, rows = self.history.marks, self.history.rows
        exposure = self._exposure_view
        gross = 0
        # Only the moved symbols that are held; most moved ones are not.
        for symbol in moved & self.committed.keys():
            close = marks[symbol]
            entry = valued.get(symbol)
            if entry is not None:
                if entry[0] == close:
                    continue
                # _revalue's regular case, inlined: a held position on the micro grid
                # whose new close is on the grid too.
                if 0.0 < close < _MAX_CLOSE:
                    micros = round(close * MICROS)
                    if micros / MICROS == close:
                        quantity = quantities[symbol]
                        notional = abs(quantity) * micros
                        gross += notional - entry[1]
                        valued[symbol] = (close, notional)
                        exposure[rows[symbol]] = (quantity * micros) / MICROS
                        continue
            self._revalue(symbol)
        self.gross_micros += gross
        moved.clear()

    def micros_of(self, symbol: str) -> int:
        """The regular notional of `symbol` in micro-units (0 when not held or irregular)."""
        entry = self._valued.get(symbol)
        return 0 if entry is None else entry[1]

    def exposures(self) -> np.ndarray:
        """A copy of the signed float exposure by history row (0 where not held)."""
        rows = self.history.row_count
        exposure = self._exposure
        if len(exposure) < rows:
            return np.concatenate((exposure, np.zeros(rows - len(exposure))))
        return exposure[:rows].copy()

    def _revalue(self, symbol: str) -> None:
        entry = self._valued.pop(symbol, None)
        if entry is not None:
            self.gross_micros -= entry[1]
            self._exposure_view[self.history.rows[symbol]] = 0.0
        self.irregular.discard(symbol)
        if symbol not in self.committed:
            return
        quantity = self._quantity.get(symbol)
        close = self.history.marks.get(symbol)
        micros = _micros(close)
        if quantity is None or micros is None:
            self.irregular.add(symbol)
            return
        row = self.history.rows[symbol]
        if row >= len(self._exposure):
            grown = np.zeros(max(2 * len(self._exposure), row + 1, 64))
            grown[:len(self._exposure)] = self._exposure
            self._exposure = grown
            self._exposure_view = memoryview(grown)
        notional = abs(quantity) * micros
        self._valued[symbol] = (close, notional)
        self.gross_micros += notional
        self._exposure_view[row] = (quantity * micros) / MICROS


def _whole(quantity: Decimal) -> int | None:
    """`quantity` as an int when it is integral, not huge and has at most 6 places."""
    if not quantity.is_finite() or quantity.as_tuple().exponent < _MIN_EXPONENT:
        return None
    whole = int(quantity)
    if whole != quantity or abs(whole) >= _MAX_QUANTITY:
        return None
    return whole


def _micros(close: float | None) -> int | None:
    """k with k / 10**6 == close for a valid close on the micro grid, else None.

    mark_price ignores a close that is not positive or infinite (NaN fails `> 0`).
    """
    if close is None or not 0.0 < close < _MAX_CLOSE:
        return None
    micros = round(close * MICROS)
    return micros if micros / MICROS == close else None
