"""aiokafka producers and consumers with the settings the runtime depends on, made in one
place so every agent orders, retries and waits the same way."""
from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from firetape.kafka.admin import create_topics_async
from firetape.kafka.settings import AgentSettings
from firetape.kafka.topology import Topology
from topics.registry import TopicSpec


def producer(settings: AgentSettings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): a retried batch is never written twice or out of
    order. With `transactional_id` it is transactional, and starting it fences any older
    producer of that id (its open transaction is aborted)."""
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                            enable_idempotence=True, linger_ms=settings.linger_ms,
                            transactional_id=transactional_id)


def consumer(settings: AgentSettings) -> AIOKafkaConsumer:
    """A group-less consumer reading only committed records; its positions are the
    caller's to set (assign + seek), nothing is committed to Kafka."""
    return AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None,
                            enable_auto_commit=False, isolation_level="read_committed",
                            auto_offset_reset="earliest", fetch_max_wait_ms=settings.fetch_wait_ms,
                            max_partition_fetch_bytes=4 * 1024 * 1024)


async def ensure_topics(settings: AgentSettings, extra: tuple[TopicSpec, ...] = ()) -> None:
    """Create the namespace's registry and internal topics, and `extra`, where missing
    (idempotent; returns once every partition has a leader)."""
    await create_topics_async(settings.bootstrap, Topology(settings.prefix).specs() + extra)
