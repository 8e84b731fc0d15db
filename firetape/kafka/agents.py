"""Thin bindings of the pipeline's stages to a faust App; `app.create_app` calls them.

Each function registers agents or tasks on the app it is given (there is no app at import
time): it creates its topic handles and moves bytes between them and a pure evaluator.
Nothing here decides anything a backtest would decide differently.
"""
from __future__ import annotations

import logging

import faust

from firetape.config import FiretapeConfig
from firetape.kafka.account import AccountAgent
from firetape.kafka.audit_agent import AuditAgent
from firetape.kafka.readback import read_values
from firetape.kafka.settings import AgentSettings
from firetape.kafka.strategy_binding import StrategyEvaluator
from firetape.kafka.topology import EVALUATED, Topology
from firetape.kafka.wire import headers
from topics.codec import codec

log = logging.getLogger(__name__)


def _topic(app: faust.App, topology: Topology, name: str) -> faust.TopicT:
    return app.topic(topology.name(name), key_type=bytes, value_type=bytes,
                     key_serializer="raw", value_serializer="raw",
                     partitions=topology.partitions(name))


def register_strategy(app: faust.App, settings: AgentSettings, config: FiretapeConfig) -> None:
    """The strategy agent: md.bars -> strategy.evaluated (+ signals, + dlq).

    Scales by md.bars partitions (`--scale strategy=3`): faust's group rebalancing moves
    partitions. Outputs go to the partition the bar came from (topics co-partitioned with
    md.bars), so the per-partition order holds.

    State is not a faust table: a partition's strategy state is rebuilt from md.bars
    itself whenever a record does not follow the last one applied (first record after a
    start or a rebalance, a redelivery), see `strategy_binding`. Outputs are flushed before
    faust commits the input offsets (at_least_once), so an offset committed means its
    evaluation is on the topic; a redelivered record makes the same evaluation again,
    which the account's merge drops by bar.
    """
    topology = Topology(settings.prefix)
    bars_name = topology.name("md.bars")
    bars = _topic(app, topology, "md.bars")
    evaluated = _topic(app, topology, EVALUATED)
    signals = _topic(app, topology, "signals")
    dlq = _topic(app, topology, "dlq")
    evaluator = StrategyEvaluator(config, bars_name, settings.run_id)
    encode_signal, encode_dlq = codec("signals").encode, codec("dlq").encode

    async def strategy(stream):
        async for event in stream.events():
            message = event.message
            partition, offset = message.partition, message.offset
            if evaluator.needs_rebuild(partition, offset):
                values = await read_values(settings.bootstrap, bars_name, partition, 0, offset)
                evaluator.rebuild(partition, values, offset)
                log.warning("strategy: rebuilt %s[%d] from %d records", bars_name, partition,
                            len(values))
            outcome = evaluator.apply(event.value, partition, offset)
            for signal in outcome.signals:
                await signals.send(key=signal.symbol.encode(), value=encode_signal(signal),
                                   partition=partition,
                                   headers=headers(type(signal).__name__, signal.event_id))
            if outcome.dead_letter is not None:
                dead = outcome.dead_letter
                log.warning("strategy: %s@%d to the dead-letter topic: %s",
                            message.topic, offset, dead.reason)
                await dlq.send(key=dead.source_topic.encode(), value=encode_dlq(dead),
                               partition=0, headers=headers("DeadLettered", dead.event_id))
            await evaluated.send(key=event.key or b"", value=outcome.evaluation,
                                 partition=partition,
                                 headers=headers("Evaluation", f"{partition}:{offset}"))

    app.agent(bars, name="strategy")(strategy)


def register_audit(app: faust.App, settings: AgentSettings) -> AuditAgent:
    """The audit agent as a task of the app (a failure stops the worker, as for the
    account agent: a restart resumes at the last committed offsets)."""
    agent = AuditAgent(settings)

    async def audit() -> None:
        try:
            await agent.run()
        except Exception as exc:
            log.exception("audit agent failed; stopping the worker")
            await app.crash(exc)

    app.task(audit)
    return agent


def register_account(app: faust.App, settings: AgentSettings,
                     config: FiretapeConfig) -> AccountAgent:
    """The account agent as a task of the app: started and stopped with the worker; if it
    fails, the worker stops with an error, so a supervisor (compose) restarts it."""
    agent = AccountAgent(settings, config)

    async def account() -> None:
        try:
            await agent.run()
        except Exception as exc:
            # Crashing the worker (exit code != 0) lets the supervisor restart it; state is
            # rebuilt from account.sequence, so a restart is always safe. On shutdown faust
            # cancels this task: an open transaction is then aborted by the next start.
            log.exception("account agent %s failed; stopping the worker", agent.account)
            await app.crash(exc)

    app.task(account)
    return agent
