"""Incremental indicators: O(1) per update, for per-bar use inside strategies.

One convention throughout: `update(...)` returns the new value, or None until the
indicator's window is full; the latest value is also in the `value` attribute (None
during warm-up). Plain attributes and __slots__, no properties, because these run once
per bar per symbol per strategy on the hot path.
"""
from strategies.indicators.atr import Atr
from strategies.indicators.ema import Ema
from strategies.indicators.rolling_std import RollingStd
from strategies.indicators.rsi import Rsi
from strategies.indicators.sma import Sma
from strategies.indicators.volatility import RollingVolatility
from strategies.indicators.zscore import ZScore

__all__ = ["Atr", "Ema", "RollingStd", "RollingVolatility", "Rsi", "Sma", "ZScore"]
