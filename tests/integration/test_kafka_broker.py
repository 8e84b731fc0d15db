"""The local Kafka broker, topics from the registry, and a record's round trip through Kafka."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from firetape.kafka import admin, broker
from tests import factories
from topics import REGISTRY, codec, spec

REPO = Path(__file__).resolve().parents[2]

def _scratch_spec(partitions: int, cleanup: str, retention_ms: int, name: str):
    """A registry-shaped spec for a throw-away topic, so drift tests never touch real ones."""
    return msgspec.structs.replace(spec("md.bars"), name=name, partitions=partitions,
                                   cleanup=cleanup, retention_ms=retention_ms)


def _unique(prefix: str) -> str:
    # Unique per run: an external KAFKA_BOOTSTRAP cluster keeps topics between sessions.
    return f"firetape-test.{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.kafka
def test_status_when_broker_started_then_reports_running_and_answering(local_kafka,
                                                                       kafka_bootstrap):
    if local_kafka is None:
        found = broker.status(broker.BrokerConfig.from_env(),
                              env={"KAFKA_BOOTSTRAP": kafka_bootstrap})
        assert (found.external, found.answering, found.bootstrap) == (True, True,
                                                                      kafka_bootstrap)
        return
    found = broker.status(local_kafka, env={})
    assert found.running and found.answering
    assert found.bootstrap == kafka_bootstrap
    assert found.version == broker.KAFKA_VERSION
    assert found.pid == broker.running_pid(local_kafka) is not None


@pytest.mark.kafka
def test_create_topics_when_run_twice_then_second_creates_nothing_and_no_drift(
        kafka_bootstrap):
    first = admin.create_topics(kafka_bootstrap)
    second = admin.create_topics(kafka_bootstrap)

    names = tuple(t.name for t in REGISTRY)
    assert set(first.created) | set(first.existing) == set(names)
    assert second == admin.CreateResult(created=(), existing=names)
    assert admin.check_topics(kafka_bootstrap) == []


@pytest.mark.kafka
def test_check_topics_when_topic_differs_from_spec_then_reports_each_field(kafka_bootstrap):
    name = _unique("drift")
    made = _scratch_spec(partitions=2, cleanup="delete", retention_ms=3_600_000, name=name)
    admin.create_topics(kafka_bootstrap, [made])

    wanted = _scratch_spec(partitions=3, cleanup="compact", retention_ms=-1, name=name)
    drifts = admin.check_topics(kafka_bootstrap, [wanted])

    assert admin.check_topics(kafka_bootstrap, [made]) == []
    assert drifts == [
        admin.TopicDrift(name, "partitions", expected="3", actual="2"),
        admin.TopicDrift(name, "cleanup.policy", expected="compact", actual="delete"),
        admin.TopicDrift(name, "retention.ms", expected="-1", actual="3600000"),
    ]


@pytest.mark.kafka
def test_check_topics_when_topic_absent_then_reports_it_missing(kafka_bootstrap):
    absent = _scratch_spec(partitions=1, cleanup="delete", retention_ms=-1,
                           name=_unique("absent"))

    drifts = admin.check_topics(kafka_bootstrap, [absent])

    assert drifts == [admin.TopicDrift(absent.name, "missing", "present", "absent")]


@pytest.mark.kafka
def test_send_when_bar_encoded_with_topic_codec_then_consumed_back_equal(kafka_bootstrap):
    admin.create_topics(kafka_bootstrap, [spec("md.bars")])
    bar = factories.bar(symbol="KFK", open=101.25, close=102.5)

    record = asyncio.run(_round_trip(kafka_bootstrap, "md.bars", bar))

    assert record.key == b"KFK"
    assert codec("md.bars").decode(record.value) == bar


async def _round_trip(bootstrap: str, topic: str, event):
    """Send one event and read back exactly that record (by partition and offset)."""
    topic_codec = codec(topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, topic_codec.encode(event),
                                            key=topic_codec.key(event))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    partition = TopicPartition(topic, sent.partition)
    consumer.assign([partition])
    await consumer.start()
    try:
        consumer.seek(partition, sent.offset)
        return await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()


@pytest.mark.kafka
def test_cli_topics_check_when_registry_topics_exist_then_exits_zero(kafka_bootstrap):
    admin.create_topics(kafka_bootstrap)

    done = subprocess.run(
        [sys.executable, "-m", "firetape.kafka.cli", "topics", "check",
         "--bootstrap", kafka_bootstrap],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)})

    assert done.returncode == 0, done.stderr
    assert "match topics.REGISTRY" in done.stdout


def test_start_when_port_busy_then_raises_broker_error_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind((broker.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = broker.BrokerConfig.from_env(data_dir=tmp_path, port=port,
                                              controller_port=port + 1)

        with pytest.raises(broker.BrokerError, match=f"port {port} .* in use"):
            broker.start(config)

    assert not config.pid_path.exists()


def test_wait_until_ready_when_nothing_listens_then_times_out_with_address(tmp_path):
    with socket.socket() as closed:
        closed.bind((broker.HOST, 0))
        address = f"{broker.HOST}:{closed.getsockname()[1]}"  # bound, never listening

        with pytest.raises(broker.BrokerError, match=f"did not answer on {address}"):
            broker.wait_until_ready(address, timeout=1.5)
