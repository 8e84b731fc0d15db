"""The composition root: the one place that builds every stage from the config.

Both runtimes call `build_stages`; nothing else instantiates a stage, and no stage knows
which runtime moves its events.
"""
from __future__ import annotations

from agents.allocator import AllocatorStage
from agents.context import Context
from agents.portfolio import PortfolioStage
from agents.strategy import StrategyStage
from connectors.paper.broker import PaperBroker
from firetape.config import FiretapeConfig
from risk.engine import RiskStage
from schemas.orders import SIMULATED
from strategies.registry import make_params, resolve


def build_stages(config: FiretapeConfig, run_id: str, execution=None) -> list:
    """The pipeline's stages: execution, portfolio, risk, strategy, allocator.

    `execution` replaces the paper broker (e.g. connectors.alpaca.execution.AlpacaExecution
    for a live session); None keeps the paper broker. Order requests carry the account
    type of the execution stage: "simulated" for the paper broker, else the type the
    broker confirmed (Alpaca: alpaca.account_type, which a live start checks against the
    broker before any stage is built, so a replay of the run makes the same).
    """
    account = config.run.account
    account_type = SIMULATED if execution is None else execution.account_type

    def ctx(name: str) -> Context:
        return Context(run_id, name, account)

    initial_cash = config.portfolio.initial_cash
    strategies = []
    for name in config.run.strategies:
        cls = resolve(name)
        strategies.append((name, cls, make_params(cls, config.strategies.get(name, {}))))
    return [
        execution if execution is not None else PaperBroker(ctx("execution"), config.execution),
        PortfolioStage(ctx("portfolio"), initial_cash),
        RiskStage(ctx("risk"), config.risk, initial_cash),
        StrategyStage(ctx("strategy"), strategies,
                      with_volatility=config.sizing.method == "vol_target"),
        AllocatorStage(ctx("allocator"), strategies=list(config.run.strategies),
                       initial_equity=initial_cash, sizing=config.sizing,
                       aggregation=config.aggregation, terms=config.orders,
                       account_type=account_type),
    ]
