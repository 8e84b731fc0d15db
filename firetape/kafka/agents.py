"""Thin bindings of the pipeline's stages to a faust App; `app.create_app` calls them.

Each function registers agents or tasks on the app it is given (there is no app at import
time): it creates its topics and table handles, and moves bytes between them and a pure
evaluator. Nothing here decides anything a backtest would decide differently.
"""
from __future__ import annotations

import logging

import faust

from firetape.config import FiretapeConfig
from firetape.kafka.account import AccountAgent
from firetape.kafka.settings import AgentSettings
from firetape.kafka.strategy_binding import StrategyEvaluator
from firetape.kafka.topology import EVALUATED, Topology
from firetape.kafka.wire import headers
from topics.codec import codec
from topics.registry import TopicSpec

log = logging.getLogger(__name__)
STATE_TABLE = "strategy-state"


def state_changelog(settings: AgentSettings) -> TopicSpec:
    """The strategy table's changelog topic, made before the worker starts: faust would make
    it too, but a first bar can arrive before its metadata does (PartitionsMismatch)."""
    topology = Topology(settings.prefix)
    return TopicSpec(f"{settings.app_id}-{STATE_TABLE}-changelog", "symbol", (bytes,),
                     topology.partitions("md.bars"), "compact", -1, "strategy", ("strategy",),
                     "per-symbol strategy state (faust table changelog)")


def _topic(app: faust.App, topology: Topology, name: str) -> faust.TopicT:
    return app.topic(topology.name(name), key_type=bytes, value_type=bytes,
                     key_serializer="raw", value_serializer="raw",
                     partitions=topology.partitions(name))


def register_strategy(app: faust.App, settings: AgentSettings, config: FiretapeConfig) -> None:
    """The strategy agent: md.bars -> strategy.evaluated (+ signals, + dlq).

    Scales by md.bars partitions (`--scale strategy=3`): faust's group rebalancing moves
    partitions, and with them the table partitions holding those symbols' state. Outputs go
    to the partition the bar came from (topics co-partitioned with md.bars), so the
    per-partition order holds and, under exactly_once, faust's transaction for that input
    partition covers them.
    """
    topology = Topology(settings.prefix)
    bars = _topic(app, topology, "md.bars")
    evaluated = _topic(app, topology, EVALUATED)
    signals = _topic(app, topology, "signals")
    dlq = _topic(app, topology, "dlq")
    state = app.Table(STATE_TABLE, partitions=topology.partitions("md.bars"),
                      key_type=bytes, value_type=bytes)
    evaluator = StrategyEvaluator(config, topology.name("md.bars"), settings.run_id)
    encode_signal, encode_dlq = codec("signals").encode, codec("dlq").encode

    async def strategy(stream):
        async for event in stream.events():
            message = event.message
            key = event.key or b""
            outcome = evaluator.apply(event.value, message.partition, message.offset,
                                      state.get(key) if key else None)
            for signal in outcome.signals:
                await signals.send(key=signal.symbol.encode(), value=encode_signal(signal),
                                   partition=message.partition,
                                   headers=headers(type(signal).__name__, signal.event_id))
            if outcome.dead_letter is not None:
                dead = outcome.dead_letter
                log.warning("strategy: %s@%d to the dead-letter topic: %s",
                            message.topic, message.offset, dead.reason)
                await dlq.send(key=dead.source_topic.encode(), value=encode_dlq(dead),
                               partition=0, headers=headers("DeadLettered", dead.event_id))
            if outcome.evaluation is not None:
                await evaluated.send(key=key, value=outcome.evaluation,
                                     partition=message.partition,
                                     headers=headers("Evaluation", f"{message.partition}:"
                                                     f"{message.offset}"))
            if outcome.state is not None:
                state[key] = outcome.state

    app.agent(bars, name="strategy")(strategy)


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
