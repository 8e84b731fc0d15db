"""Crashes on a real broker: SIGKILL the account worker (risk, execution, portfolio,
allocator) with the audit worker, or the strategy worker, mid-stream, restart them, and
get exactly the orders, fills and decisions of an uninterrupted embedded backtest, and in
the audit's ClickHouse tables every event of every topic once: none missing, none twice.
Stop and restart the broker mid-stream: the pipeline resumes without loss."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from firetape.kafka.audit_agent import AuditAgent
from firetape.kafka.readback import digest, read_topic
from firetape.kafka.settings import AgentSettings
from tests.integration.kafka_harness import (AgentProcess, audit_counts, embedded_run,
                                             publish_cli, wait_audit_caught_up,
                                             wait_for_count)
from topics.registry import REGISTRY

pytestmark = pytest.mark.kafka

ORDER_TOPICS = ("order.requests", "risk.decisions", "orders", "order.updates", "fills",
                "portfolio")


def _ids(records, field: bytes) -> Counter:
    found = Counter()
    for record in records:
        start = record.value.index(field) + len(field)
        found[record.value[start:record.value.index(b'"', start)]] += 1
    return found


def _crash_run(bootstrap: str, tmp_path, prefix: str, kill: tuple[str, ...]):
    """The sample through separate strategy and account workers (and an audit worker if
    it is in `kill`); the workers `kill` are SIGKILLed once the pipeline has made 60
    fills, and started again. Returns the reference (embedded backtest) and every
    registry topic read back (after the audit agent, if any, committed past them all)."""
    reference = embedded_run(tmp_path / "runs")
    names = ("strategy", "account") + (("audit",) if "audit" in kill else ())
    workers = {name: AgentProcess(bootstrap, prefix, tmp_path, "agent", name).start()
               for name in names}
    feed = publish_cli(bootstrap, prefix, speed=f"{86400 * 50}x", wait=False)
    try:
        wait_for_count(bootstrap, prefix + "fills", 60, agents=tuple(workers.values()))
        for name in kill:
            workers[name].kill()
        for name in kill:
            workers[name].start()
        assert feed.wait(timeout=120) == 0
        wait_for_count(bootstrap, prefix + "account.sequence", reference.bars,
                       agents=tuple(workers.values()))
        workers["strategy"].stop()                    # the topics are final now
        workers["account"].stop()
        records = {t.name: asyncio.run(read_topic(bootstrap, prefix + t.name))
                   for t in REGISTRY}
        targets = {(prefix + name, r.partition): r.offset + 1       # after the last record
                   for name, found in records.items() for r in found}
        if "audit" in workers:
            group = AuditAgent(AgentSettings(bootstrap=bootstrap, prefix=prefix)).group_id
            wait_audit_caught_up(bootstrap, group, targets, workers["audit"])
    finally:
        if feed.poll() is None:
            feed.kill()
        for worker in workers.values():
            worker.stop()
    return reference, records


def _assert_audit_has_every_event_once(tmp_path, records) -> None:
    """The audit's events table: per topic exactly the topic's records, each event once
    (FINAL); the rows before deduplication are printed (redeliveries after the kill)."""
    audited = audit_counts(tmp_path / "audit-db")
    expected = {name: [len(found)] * 2 for name, found in records.items() if found}
    assert audited["topics"] == expected
    print(f"audit rows before deduplication: {audited['raw']}, "
          f"events: {sum(len(found) for found in records.values())}")


def _assert_exactly_the_backtest(reference, topics) -> None:
    orders = _ids(topics["orders"], b'"client_order_id":"')
    fills = _ids(topics["fills"], b'"fill_id":"')
    assert [i for i, n in orders.items() if n > 1] == []
    assert [i for i, n in fills.items() if n > 1] == []
    assert len(orders) == reference.counts["orders"]
    assert len(fills) == reference.counts["fills"]
    for topic in ORDER_TOPICS[:-1]:
        assert digest(topics[topic]) == reference.digests[topic], topic
    assert [r.value for r in topics["portfolio"]] == reference.values("portfolio")[:-1]


def test_sigkill_when_account_and_audit_workers_crash_mid_stream_then_nothing_missing_or_twice(
        kafka_bootstrap, tmp_path):
    reference, records = _crash_run(kafka_bootstrap, tmp_path, "crash-account.",
                                    ("account", "audit"))
    _assert_exactly_the_backtest(reference, records)
    _assert_audit_has_every_event_once(tmp_path, records)


# The strategy worker's state is rebuilt on the first record of a partition after the
# restart, from the partition's latest snapshot and the md.bars records after it
# (strategy_binding), so what was committed or not before the kill cannot lose a bar.
def test_sigkill_when_strategy_worker_crashes_mid_stream_then_no_duplicate_and_no_missing_orders(
        kafka_bootstrap, tmp_path):
    _assert_exactly_the_backtest(*_crash_run(kafka_bootstrap, tmp_path, "crash-strategy.",
                                             ("strategy",)))
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("agent-strategy-*.log"))
    assert "from the snapshot at" in logs        # the restart started from a snapshot


def test_broker_restart_when_stopped_mid_stream_then_pipeline_resumes_without_loss(
        local_kafka, kafka_bootstrap, tmp_path):
    """Stop the broker while the agents work through the first half of the sample, start
    it again on the same data directory, publish the second half: the outputs are those
    of the embedded backtest. A worker that exits while Kafka is away is started again,
    as the compose file's restart policy does."""
    if local_kafka is None:
        pytest.skip("KAFKA_BOOTSTRAP names an external cluster: the test cannot restart it")
    import numpy as np

    from connectors.files import load_bars
    from firetape.config import load_config
    from firetape.kafka import broker
    from firetape.kafka.publish import backtest_run_id, publish_bars
    from firetape.kafka.settings import AgentSettings
    from tests.integration.kafka_harness import DEMO_CONFIG, SAMPLE

    reference = embedded_run(tmp_path / "runs")
    prefix = "bounce."
    frame = load_bars([SAMPLE])
    run_id = backtest_run_id(load_config(DEMO_CONFIG, environ={}), frame)
    middle = np.sort(np.unique(frame.ts))[len(np.unique(frame.ts)) // 2]
    halves = (frame.take(np.flatnonzero(frame.ts < middle)),
              frame.take(np.flatnonzero(frame.ts >= middle)))
    settings = AgentSettings(bootstrap=kafka_bootstrap, prefix=prefix)
    asyncio.run(publish_bars(settings, halves[0], run_id))
    worker = AgentProcess(kafka_bootstrap, prefix, tmp_path, "agents", "--no-audit").start()
    try:
        wait_for_count(kafka_bootstrap, prefix + "fills", 10, agents=(worker,))
        broker.stop(local_kafka)                      # mid-stream: the backlog is not done
        broker.start(local_kafka)
        worker.restart_if_exited()
        asyncio.run(publish_bars(settings, halves[1], run_id))
        wait_for_count(kafka_bootstrap, prefix + "account.sequence", reference.bars,
                       timeout=180, agents=(worker,), supervise=True)
    finally:
        worker.stop()
    topics = {t: asyncio.run(read_topic(kafka_bootstrap, prefix + t)) for t in ORDER_TOPICS}
    print(f"worker restarts after the broker came back: {worker.restarts}")
    _assert_exactly_the_backtest(reference, topics)
