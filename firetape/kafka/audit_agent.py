"""The audit agent: every registry topic -> ClickHouse, through the audit's batching sink.

Offsets are committed to Kafka only for what the sink reports committable, i.e. records
whose batch is stored (`AuditSink.add`/`flush` return them). A crash therefore loses
nothing: the records after the last commit are read again and land on the same rows
(ts_ingest comes from the record's Kafka timestamp, not from this process's clock), and
the audit tables deduplicate on event_id. When the store keeps failing, the sink blocks
(backpressure) or raises SinkStalled; then nothing more is committed and the agent stops
with an error, so its supervisor restarts it and reading resumes at the last commit.

The store is ClickHouse at CLICKHOUSE_URL, else chdb in FIRETAPE_AUDIT_DB (default
`.firetape-audit`). Rows carry the registry's topic names, without the namespace prefix,
so the audit's queries read a Kafka deployment like an embedded run.
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from firetape.kafka import clients
from firetape.kafka.settings import AgentSettings
from firetape.kafka.topology import Topology
from topics.registry import REGISTRY

log = logging.getLogger(__name__)
MAX_RECORDS = 5000
DEFAULT_DB = ".firetape-audit"


@dataclass
class AuditStats:
    records: int = 0
    commits: int = 0


def open_audit_store(env=None):
    """The audit store this agent writes: CLICKHOUSE_URL, else chdb in FIRETAPE_AUDIT_DB."""
    from firetape.audit.store import open_store

    env = os.environ if env is None else env
    if env.get("CLICKHOUSE_URL"):
        return open_store(url=env["CLICKHOUSE_URL"])
    return open_store(db=env.get("FIRETAPE_AUDIT_DB") or DEFAULT_DB)


class AuditAgent:
    """Runs until `stop()`; `ready` is set once the store is open and reading has begun."""

    def __init__(self, settings: AgentSettings, store_factory=open_audit_store, *,
                 batch_rows: int = 20_000, max_delay_s: float = 0.5) -> None:
        self.settings = settings
        self.topology = Topology(settings.prefix)
        self.topics = {self.topology.name(t.name): t.name for t in REGISTRY}
        # Not the faust worker's own group ("<app id>-audit"): that one speaks faust's
        # assignor protocol, this consumer aiokafka's default.
        self.group_id = f"{settings.app_id}-audit-sink"
        self.stats = AuditStats()
        self.ready = asyncio.Event()
        self._store_factory = store_factory
        self._batch_rows, self._max_delay_s = batch_rows, max_delay_s
        self._stopping = asyncio.Event()
        self._sink = None
        self._consumer: AIOKafkaConsumer | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        from firetape.audit.sink import AuditSink

        await clients.ensure_topics(self.settings)
        store = await asyncio.to_thread(self._store_factory)
        try:
            self._sink = AuditSink(store, batch_rows=self._batch_rows,
                                   max_delay_s=self._max_delay_s)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap, group_id=self.group_id,
                enable_auto_commit=False, auto_offset_reset="earliest",
                isolation_level="read_committed",
                fetch_max_wait_ms=max(1, self.settings.fetch_wait_ms) * 20,
                max_partition_fetch_bytes=4 * 1024 * 1024)
            self._consumer = consumer
            await consumer.start()
            try:
                consumer.subscribe(sorted(self.topics), listener=_FlushOnRevoke(self))
                self.ready.set()
                await self._consume(consumer)
                await self._flush_and_commit()        # a clean stop leaves nothing behind
            finally:
                await consumer.stop()
        finally:
            await asyncio.to_thread(store.close)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
            if batch:
                advanced = await asyncio.to_thread(self._add, batch)
                await self._commit(advanced)
            elif self._sink.due():
                await self._flush_and_commit()

    def _add(self, batch) -> dict[tuple[str, int], int]:
        """Every record of `batch` into the sink (blocking: runs in a thread)."""
        advanced: dict[tuple[str, int], int] = {}
        sink = self._sink
        for tp, records in batch.items():
            for r in records:
                advanced.update(sink.add(self.topics[tp.topic], tp.partition, r.offset, r.value,
                                         ts_ingest_ns=r.timestamp * 1_000_000,
                                         kafka_ts_ms=r.timestamp, key=r.key or b""))
        self.stats.records += sum(len(records) for records in batch.values())
        return advanced

    async def _flush_and_commit(self) -> None:
        await self._commit(await asyncio.to_thread(self._sink.flush))

    async def _commit(self, advanced: dict[tuple[str, int], int]) -> None:
        if not advanced:
            return
        name = self.topology.name          # the sink saw registry names
        offsets = {TopicPartition(name(topic), partition): offset
                   for (topic, partition), offset in advanced.items()}
        await self._consumer.commit(offsets)
        self.stats.commits += 1


class _FlushOnRevoke(ConsumerRebalanceListener):
    """Before partitions move to another audit worker, store and commit what was read
    from them, so the next owner starts right after it."""

    def __init__(self, agent: AuditAgent) -> None:
        self.agent = agent

    async def on_partitions_revoked(self, revoked) -> None:
        if self.agent._sink is not None and self.agent._sink.buffered:
            await self.agent._flush_and_commit()

    async def on_partitions_assigned(self, assigned) -> None:
        return None
