"""The batching audit sink for the Kafka runtime: records in, committed rows out, and
the offsets that are then safe to commit.

The Kafka binding (another module's job) drives it like this::

    sink = AuditSink(store)
    for record in consumer:                          # one poll loop
        committable = sink.add(record.topic, record.partition, record.offset,
                               record.value, ts_ingest_ns=..., kafka_ts_ms=record.timestamp)
        if committable:
            consumer.commit(committable)              # {(topic, partition): next offset}
        elif sink.due():
            consumer.commit(sink.flush())
    consumer.commit(sink.flush())                     # on rebalance / shutdown

Guarantees:
- size and time bounds: a batch is written when it reaches `batch_rows`, or when its
  oldest record is `max_delay_s` old (checked by add() and due());
- flush before commit: offsets are reported only for records whose batch is committed
  in the store, and never past a batch that failed, because batches are written in
  arrival order and a failure stops the flush;
- retry with backoff: a failed batch is retried with exponential backoff (capped);
- never drops: after `max_attempts` failures flush() raises SinkStalled and keeps every
  record; when the buffer holds `max_buffered_rows`, add() blocks, retrying the flush, so
  the consumer stops consuming (backpressure) instead of buffering without bound. If the
  binding gives up (SinkStalled), it must not commit: a restart resumes from the last
  committed offset, and redelivered records are deduplicated on event_id.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firetape.audit.clock import clock_source, host_name
from firetape.audit.store import EventBatch

TopicPartition = tuple[str, int]


class SinkStalled(Exception):
    """The store kept failing; nothing was dropped and nothing past it is committable."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: initial_s, initial_s * multiplier, ... capped at max_s."""

    initial_s: float = 0.05
    multiplier: float = 2.0
    max_s: float = 5.0
    max_attempts: int = 8   # per flush() call; add() under backpressure retries until block_timeout_s

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1))


class _Pending:
    """Records waiting for the store, in arrival order, as columns."""

    __slots__ = ("topic", "partition", "offset", "kafka_ts_ms", "ts_ingest_ns", "key",
                 "payload", "first_at")

    def __init__(self, first_at: float) -> None:
        self.topic: list[str] = []
        self.partition: list[int] = []
        self.offset: list[int] = []
        self.kafka_ts_ms: list[int | None] = []
        self.ts_ingest_ns: list[int] = []
        self.key: list[bytes] = []
        self.payload: list[bytes] = []
        self.first_at = first_at

    def __len__(self) -> int:
        return len(self.payload)


class AuditSink:
    """Buffers raw records and writes them to an AuditStore in bounded batches."""

    def __init__(self, store, *, batch_rows: int = 50_000, max_delay_s: float = 1.0,
                 max_buffered_rows: int = 200_000, retry: RetryPolicy = RetryPolicy(),
                 block_timeout_s: float | None = None,
                 on_committable: Callable[[dict[TopicPartition, int]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 host: str | None = None, clock_source_name: str | None = None) -> None:
        if batch_rows < 1 or max_buffered_rows < batch_rows:
            raise ValueError("need 1 <= batch_rows <= max_buffered_rows")
        self.store = store
        self.batch_rows = batch_rows
        self.max_delay_s = max_delay_s
        self.max_buffered_rows = max_buffered_rows
        self.retry = retry
        self.block_timeout_s = block_timeout_s
        self.on_committable = on_committable
        self._clock = clock
        self._sleep = sleep
        self._host = host or host_name()
        self._clock_source = clock_source_name or clock_source()
        self._batches: deque[_Pending] = deque()
        self._buffered = 0
        self._committable: dict[TopicPartition, int] = {}
        self.batches_written = 0
        self.failures = 0

    @property
    def buffered(self) -> int:
        """Records accepted but not yet committed in the store."""
        return self._buffered

    @property
    def committable(self) -> dict[TopicPartition, int]:
        """For each partition, the next offset to commit (last stored offset + 1)."""
        return dict(self._committable)

    def add(self, topic: str, partition: int, offset: int, value: bytes, *,
            ts_ingest_ns: int, kafka_ts_ms: int | None = None,
            key: bytes = b"") -> dict[TopicPartition, int]:
        """Accept one record; write what is due. Returns the offsets that became
        committable by this call (empty if nothing was written).

        `ts_ingest_ns` must come from the record (the hop's own stamp), so a redelivered
        record lands on the same row. Blocks while the buffer is full (backpressure).
        """
        advanced: dict[TopicPartition, int] = {}
        if self._buffered >= self.max_buffered_rows:
            advanced.update(self._drain_blocking())
        now = self._clock()
        if not self._batches or len(self._batches[-1]) >= self.batch_rows:
            self._batches.append(_Pending(now))
        batch = self._batches[-1]
        batch.topic.append(topic)
        batch.partition.append(partition)
        batch.offset.append(offset)
        batch.kafka_ts_ms.append(kafka_ts_ms)
        batch.ts_ingest_ns.append(ts_ingest_ns)
        batch.key.append(key)
        batch.payload.append(value)
        self._buffered += 1
        if len(self._batches[0]) >= self.batch_rows or self.due(now):
            try:
                advanced.update(self.flush())
            except SinkStalled:
                pass   # kept in the buffer; the next add() or flush() retries
        return advanced

    def due(self, now: float | None = None) -> bool:
        """Whether the oldest buffered record has waited `max_delay_s`."""
        if not self._batches:
            return False
        now = self._clock() if now is None else now
        return now - self._batches[0].first_at >= self.max_delay_s

    def flush(self) -> dict[TopicPartition, int]:
        """Write every buffered batch, oldest first, retrying each with backoff.

        Returns the offsets that became committable. Raises SinkStalled (keeping the
        failed batch and everything after it) when a batch fails `max_attempts` times.
        """
        advanced: dict[TopicPartition, int] = {}
        while self._batches:
            self._write_with_retry(self._batches[0], self.retry.max_attempts)
            advanced.update(self._complete_oldest())
        return advanced

    def _drain_blocking(self) -> dict[TopicPartition, int]:
        """Backpressure: retry the oldest batch until the buffer has room again."""
        started = self._clock()
        advanced: dict[TopicPartition, int] = {}
        while self._buffered >= self.max_buffered_rows:
            try:
                self._write_with_retry(self._batches[0], self.retry.max_attempts)
            except SinkStalled:
                if (self.block_timeout_s is not None
                        and self._clock() - started >= self.block_timeout_s):
                    raise
                continue
            advanced.update(self._complete_oldest())
        return advanced

    def _write_with_retry(self, batch: _Pending, attempts: int) -> None:
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                self.store.insert_batch(EventBatch(
                    batch.topic, batch.partition, batch.offset, batch.kafka_ts_ms,
                    batch.ts_ingest_ns, batch.key, batch.payload, self._host,
                    self._clock_source))
                return
            except Exception as exc:  # any store failure: keep the batch, back off
                last_error = exc
                self.failures += 1
                if attempt < attempts:
                    self._sleep(self.retry.delay(attempt))
        raise SinkStalled(f"the audit store failed {attempts} times; {self._buffered} "
                          f"record(s) kept, nothing committed past them: {last_error}")

    def _complete_oldest(self) -> dict[TopicPartition, int]:
        batch = self._batches.popleft()
        self._buffered -= len(batch)
        self.batches_written += 1
        advanced: dict[TopicPartition, int] = {}
        for topic, partition, offset in zip(batch.topic, batch.partition, batch.offset):
            tp = (topic, partition)
            if offset + 1 > self._committable.get(tp, -1):
                advanced[tp] = offset + 1
        self._committable.update(advanced)
        if advanced and self.on_committable is not None:
            self.on_committable(dict(advanced))
        return advanced
