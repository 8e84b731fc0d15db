"""Strategy plugins: the plugin API, the built-in strategies and the loader.

A top-level package of its own because strategies are what users add to: a strategy is a
class with a `name`, a `Params` struct and `on_bar`, and the config names it (built-in,
"module:Class" or "file.py:Class"). The pipeline stage that drives them is
`agents.strategy.StrategyStage`.
"""
from strategies.base import Strategy, StrategyParams, Target
from strategies.mean_reversion import MeanReversion, MeanReversionParams
from strategies.momentum import Momentum, MomentumParams
from strategies.registry import builtin_names, make_params, resolve
from strategies.sma_cross import SmaCross, SmaCrossParams

__all__ = [
    "MeanReversion", "MeanReversionParams", "Momentum", "MomentumParams", "SmaCross",
    "SmaCrossParams", "Strategy", "StrategyParams", "Target", "builtin_names", "make_params",
    "resolve",
]
