"""The alpaca-py classes this package uses, imported in one place.

alpaca-py 0.44 imports `websockets.legacy` when its `trading` and `data` packages load,
and websockets >= 14 deprecates that module with a DeprecationWarning at import. We do
not use alpaca-py's streams (stream.py speaks the protocol itself), so that one warning,
matched by its text, is silenced here and nowhere else; every other warning still counts.
"""
from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="websockets.legacy is deprecated",
                            category=DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.trading.client import TradingClient

__all__ = ["APIError", "StockHistoricalDataClient", "TradingClient"]
