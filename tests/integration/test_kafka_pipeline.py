"""The Kafka agents on a real broker: the bundled sample end to end, parity with the
embedded backtest, a poison record, the kill switch.

Each test has its own topic namespace (FIRETAPE_TOPIC_PREFIX) on the session's broker and
runs the agents as the CLI does, in subprocesses. Parity is by the embedded event log's
digests: same bytes, same partitions, same order, hence same ids.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from firetape.kafka.readback import digest, read_topic
from tests.integration.kafka_harness import (SAMPLE, AgentProcess, agent_env, audit_counts,
                                             embedded_run, publish_cli, wait_for_count)

pytestmark = pytest.mark.kafka

# Every topic the agents write, compared whole. `portfolio` is compared without the
# embedded run's last record: the closing valuation that the bus's finish() makes at the
# end of a finite backtest, which a live stream never reaches.
EXACT_TOPICS = ("signals", "order.requests", "risk.decisions", "orders", "order.updates",
                "fills")


def _topic(bootstrap: str, prefix: str, topic: str):
    return asyncio.run(read_topic(bootstrap, prefix + topic))


def test_publish_when_sample_runs_through_agents_then_kafka_equals_embedded_backtest(
        kafka_bootstrap, tmp_path):
    reference = embedded_run(tmp_path / "runs")
    prefix = "parity."
    with AgentProcess(kafka_bootstrap, prefix, tmp_path, "agents") as worker:  # audit too
        publish_cli(kafka_bootstrap, prefix)
        wait_for_count(kafka_bootstrap, prefix + "fills", reference.counts["fills"])
        wait_for_count(kafka_bootstrap, prefix + "account.sequence", reference.bars)
        _wait_audited(kafka_bootstrap, prefix, worker)
    audited = audit_counts(tmp_path / "audit-db")["topics"]
    for topic in EXACT_TOPICS:
        records = _topic(kafka_bootstrap, prefix, topic)
        assert len(records) == reference.counts[topic], topic
        assert digest(records) == reference.digests[topic], topic
        assert audited[topic] == [len(records)] * 2, topic   # the audit agent: each once
    portfolio = [r.value for r in _topic(kafka_bootstrap, prefix, "portfolio")]
    assert portfolio == reference.values("portfolio")[:-1]
    assert _topic(kafka_bootstrap, prefix, "dlq") == []


def test_scale_when_three_strategy_workers_split_md_bars_then_kafka_equals_embedded_backtest(
        kafka_bootstrap, tmp_path):
    """`docker compose up --scale strategy=3`, as processes: three strategy workers share
    md.bars' partitions through their consumer group, one account worker merges."""
    from firetape.kafka.settings import AgentSettings
    from firetape.kafka.strategy_agent import StrategyAgent

    reference = embedded_run(tmp_path / "runs")
    prefix = "scale."
    group = StrategyAgent(AgentSettings(bootstrap=kafka_bootstrap, prefix=prefix),
                          _demo_config()).group_id
    workers = [AgentProcess(kafka_bootstrap, prefix, tmp_path, "agent", "strategy")
               for _ in range(3)] + [AgentProcess(kafka_bootstrap, prefix, tmp_path,
                                                  "agent", "account")]
    try:
        for worker in workers:
            worker.start()
        members = _wait_group_members(kafka_bootstrap, group, 3)
        publish_cli(kafka_bootstrap, prefix)
        wait_for_count(kafka_bootstrap, prefix + "account.sequence", reference.bars,
                       agents=tuple(workers))
    finally:
        for worker in workers:
            worker.stop()
    assert members == 3
    for topic in EXACT_TOPICS:
        assert digest(_topic(kafka_bootstrap, prefix, topic)) == reference.digests[topic], topic


def _wait_audited(bootstrap: str, prefix: str, worker: AgentProcess) -> None:
    """Until the worker's audit agent has committed past every record of every registry
    topic (so its database holds them all once the worker stops)."""
    from firetape.kafka.audit_agent import AuditAgent
    from firetape.kafka.settings import AgentSettings
    from tests.integration.kafka_harness import wait_audit_caught_up
    from topics.registry import REGISTRY

    targets = {(prefix + t.name, r.partition): r.offset + 1
               for t in REGISTRY for r in _topic(bootstrap, prefix, t.name)}
    group = AuditAgent(AgentSettings(bootstrap=bootstrap, prefix=prefix)).group_id
    wait_audit_caught_up(bootstrap, group, targets, worker)


def _demo_config():
    from firetape.config import load_config
    from tests.integration.kafka_harness import DEMO_CONFIG

    return load_config(DEMO_CONFIG, environ={})


def _wait_group_members(bootstrap: str, group: str, count: int, timeout: float = 90.0) -> int:
    """The members of consumer group `group` once it is stable with `count` of them (or
    whatever it has when `timeout` runs out)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    async def members() -> tuple[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = (await admin.describe_consumer_groups([group]))[0]
            _, _, state, _, _, found = described.groups[0][:6]
            return state, len(found)
        except GroupCoordinatorNotAvailableError:      # no member has joined yet
            return "", 0
        finally:
            await admin.close()

    deadline = time.monotonic() + timeout
    state, found = "", 0
    while time.monotonic() < deadline:
        state, found = asyncio.run(members())
        if state == "Stable" and found >= count:
            break
        time.sleep(1.0)
    return found


def test_poison_when_undecodable_bar_on_md_bars_then_dead_lettered_and_stream_goes_on(
        kafka_bootstrap, tmp_path):
    reference = embedded_run(tmp_path / "runs")
    prefix = "poison."
    poison = b"\xff\xfenot a bar"
    asyncio.run(_send_raw(kafka_bootstrap, prefix + "md.bars", poison, partition=1))
    with AgentProcess(kafka_bootstrap, prefix, tmp_path, "agents", "--no-audit"):
        publish_cli(kafka_bootstrap, prefix)
        wait_for_count(kafka_bootstrap, prefix + "fills", reference.counts["fills"])
        dead = wait_for_count(kafka_bootstrap, prefix + "dlq", 1)
    import msgspec

    from schemas import DeadLettered
    letter = msgspec.json.decode(dead[0].value, type=DeadLettered)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        prefix + "md.bars", 1, 0)
    assert letter.payload == poison and letter.reason.startswith("undecodable")
    # The rest of the stream went on, unchanged: same orders and fills as without poison.
    for topic in ("orders", "fills"):
        assert digest(_topic(kafka_bootstrap, prefix, topic)) == reference.digests[topic]


def test_kill_switch_when_engaged_mid_stream_then_no_approval_after_it(kafka_bootstrap,
                                                                      tmp_path):
    prefix = "kill."
    with AgentProcess(kafka_bootstrap, prefix, tmp_path, "agents", "--no-audit"):
        feed = publish_cli(kafka_bootstrap, prefix, speed=f"{86400 * 60}x", wait=False)
        try:
            wait_for_count(kafka_bootstrap, prefix + "fills", 60)
            _engage_kill_switch(kafka_bootstrap, prefix, tmp_path)
        finally:
            assert feed.wait(timeout=120) == 0
        wait_for_count(kafka_bootstrap, prefix + "account.sequence", 3024 + 1)
    from topics.codec import codec
    decode = codec("risk.decisions").decode
    decisions = [decode(r.value) for r in _topic(kafka_bootstrap, prefix, "risk.decisions")]
    kinds = [type(d).__name__ for d in decisions]
    halted = next(i for i, d in enumerate(decisions)
                  if kinds[i] == "TradingStateChanged" and d.state == "HALTED")
    assert "OrderApproved" in kinds[:halted]
    assert "OrderApproved" not in kinds[halted:]
    assert "OrderDenied" in kinds[halted:]     # requests kept coming and were refused


async def _send_raw(bootstrap: str, topic: str, value: bytes, partition: int) -> None:
    from firetape.kafka import clients
    from firetape.kafka.settings import AgentSettings

    settings = AgentSettings(bootstrap=bootstrap, prefix=topic.split("md.bars")[0])
    await clients.ensure_topics(settings)
    producer = clients.producer(settings)
    await producer.start()
    try:
        await (await producer.send(topic, value, key=b"SYM000", partition=partition))
    finally:
        await producer.stop()


def _engage_kill_switch(bootstrap: str, prefix: str, workdir) -> None:
    """`firetape control kill-switch engage` as an operator runs it."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "firetape.cli", "control", "kill-switch",
                           "engage", "--reason", "test", "--operator", "pytest"],
                          env=agent_env(bootstrap, prefix, workdir), capture_output=True,
                          timeout=120)
    said = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, said
    assert f"KillSwitchEngaged by pytest sent to {prefix}control@" in said
