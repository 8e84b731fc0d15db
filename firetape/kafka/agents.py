"""The agents as tasks of a faust App; `app.create_app` calls the register functions.

Each agent is an object with `run()` over its own aiokafka clients (strategy_agent,
account, audit_agent); the faust worker gives them their lifecycle (start, SIGTERM, crash),
logging and the health endpoint. The agents only move bytes between topics and the pure
stages: nothing here decides anything a backtest would decide differently.
"""
from __future__ import annotations

import logging

import faust

from firetape.config import FiretapeConfig
from firetape.kafka.account import AccountAgent
from firetape.kafka.audit_agent import AuditAgent
from firetape.kafka.settings import AgentSettings
from firetape.kafka.strategy_agent import StrategyAgent

log = logging.getLogger(__name__)


def _as_task(app: faust.App, name: str, agent):
    """Run `agent` as a task of `app`. If it fails, the worker stops with an error (exit
    code != 0) so its supervisor (compose's restart policy) starts it again; every agent
    resumes from Kafka (committed offsets, or state rebuilt from its input topics), so a
    restart is always safe. On shutdown faust cancels the task; an account agent's open
    transaction is then aborted by its next start."""
    async def task() -> None:
        try:
            await agent.run()
        except Exception as exc:
            log.exception("%s agent failed; stopping the worker", name)
            await app.crash(exc)

    task.__name__ = task.__qualname__ = name
    app.task(task)
    return agent


def register_strategy(app: faust.App, settings: AgentSettings,
                      config: FiretapeConfig) -> StrategyAgent:
    """md.bars -> strategy.evaluated + signals (+ dlq); scales by md.bars partitions."""
    return _as_task(app, "strategy", StrategyAgent(settings, config))


def register_account(app: faust.App, settings: AgentSettings,
                     config: FiretapeConfig) -> AccountAgent:
    """Risk, execution, portfolio and allocator of the config's account."""
    return _as_task(app, "account", AccountAgent(settings, config))


def register_audit(app: faust.App, settings: AgentSettings) -> AuditAgent:
    """Every registry topic -> ClickHouse, committing offsets only for stored records."""
    return _as_task(app, "audit", AuditAgent(settings))
