"""Turning a column of raw cells into float64, with NaN for cells that are not numbers."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# What a plain decimal number looks like; "nan", "inf" and "1,234" are not numbers here.
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def to_floats(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Float64 values of a numeric or text column; NaN where a cell is empty or not a number."""
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        text = pc.utf8_trim_whitespace(column.cast(pa.string()))
        # Null out what is not a number, so the cast below (all in Arrow, fast) cannot fail.
        column = pc.if_else(pc.match_substring_regex(text, _NUMBER), text, pa.scalar(None, pa.string()))
    return column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
