"""Reading topics back in full: for the parity and fault tests, the benchmark and anyone
comparing a Kafka run with an embedded one."""
from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple


async def read_topic(bootstrap: str, topic: str, *, committed_only: bool = True) -> list[Record]:
    """Every record of `topic` now on the cluster, by partition then offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed" if committed_only
                                else "read_uncommitted")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()   # noqa: SLF001 (fresh topic)
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Record] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                out.extend(Record(r.partition, r.offset, r.key, r.value, r.timestamp,
                                  tuple(r.headers)) for r in records)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        out.sort(key=lambda r: (r.partition, r.offset))
        return out
    finally:
        await consumer.stop()


def digest(records: list[Record]) -> str:
    """The embedded event log's digest (firetape.eventlog.digest) of these records, so a
    topic on Kafka and the same topic in a run directory can be compared by one hash."""
    from firetape.eventlog.digest import partition_digest, topic_digest

    by_partition: dict[int, list[Record]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    return topic_digest((p, partition_digest(by_partition[p])) for p in sorted(by_partition))


async def read_range(bootstrap: str, topic: str, partition: int, start: int,
                     end: int) -> list[Record]:
    """The committed records of one partition with `start` <= offset < `end` (stops at the
    partition's end if that comes first)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        last = (await consumer.end_offsets([tp]))[tp]
        end = min(end, last)
        out: list[Record] = []
        if start >= end:
            return out
        consumer.seek(tp, start)
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            for r in batch.get(tp, ()):
                if r.offset < end:
                    out.append(Record(r.partition, r.offset, r.key, r.value, r.timestamp,
                                      tuple(r.headers)))
        return out
    finally:
        await consumer.stop()


async def read_values(bootstrap: str, topic: str, partition: int, start: int,
                      end: int) -> list[bytes]:
    """The values of `read_range`."""
    return [r.value for r in await read_range(bootstrap, topic, partition, start, end)]
