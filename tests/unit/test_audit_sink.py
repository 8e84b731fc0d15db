"""The audit sink: batching bounds, retry with backoff, committable offsets, backpressure."""
from __future__ import annotations

import pytest

from firetape.audit.sink import AuditSink, RetryPolicy, SinkStalled


class FakeStore:
    """Records inserted batches; fails the next `fail_next` inserts."""

    def __init__(self, fail_next: int = 0) -> None:
        self.fail_next = fail_next
        self.batches: list[list[tuple[str, int, int]]] = []
        self.attempts = 0

    def insert_batch(self, batch) -> None:
        self.attempts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("store down")
        self.batches.append(list(zip(batch.topic, batch.partition, batch.offset)))

    @property
    def rows(self) -> list[tuple[str, int, int]]:
        return [row for batch in self.batches for row in batch]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_sink(store, clock, **options) -> AuditSink:
    return AuditSink(store, clock=clock, sleep=clock.sleep, host="h", clock_source_name="c",
                     **options)


def add(sink: AuditSink, offset: int, partition: int = 0):
    return sink.add("fills", partition, offset, b'{"event_id":"e%d"}' % offset,
                    ts_ingest_ns=1_000 + offset)


def test_add_when_batch_size_reached_then_batch_written_and_offsets_committable():
    store, clock = FakeStore(), FakeClock()
    sink = make_sink(store, clock, batch_rows=3, max_buffered_rows=10)
    assert add(sink, 0) == {} and add(sink, 1) == {}
    assert add(sink, 2) == {("fills", 0): 3}
    assert store.rows == [("fills", 0, 0), ("fills", 0, 1), ("fills", 0, 2)]
    assert sink.buffered == 0


def test_add_when_oldest_record_older_than_max_delay_then_flushed():
    store, clock = FakeStore(), FakeClock()
    sink = make_sink(store, clock, batch_rows=100, max_buffered_rows=100, max_delay_s=1.0)
    add(sink, 0)
    assert not sink.due()
    clock.now = 1.5
    assert sink.due()
    assert add(sink, 1) == {("fills", 0): 2}
    assert len(store.batches) == 1


def test_flush_when_store_fails_n_times_then_retried_with_backoff_and_nothing_lost():
    store, clock = FakeStore(fail_next=3), FakeClock()
    sink = make_sink(store, clock, batch_rows=10, max_buffered_rows=10,
                     retry=RetryPolicy(initial_s=0.1, multiplier=2.0, max_s=1.0, max_attempts=5))
    for offset in range(4):
        add(sink, offset)
    assert sink.flush() == {("fills", 0): 4}
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert store.attempts == 4
    assert store.rows == [("fills", 0, n) for n in range(4)]


def test_flush_when_store_keeps_failing_then_stalled_and_no_offset_past_failed_batch():
    store, clock = FakeStore(), FakeClock()
    sink = make_sink(store, clock, batch_rows=2, max_buffered_rows=10,
                     retry=RetryPolicy(initial_s=0.01, max_attempts=3))
    add(sink, 0)
    assert add(sink, 1) == {("fills", 0): 2}   # the first batch is stored
    store.fail_next = 100
    for offset in range(2, 6):                   # two more batches, the store now down
        add(sink, offset)
    with pytest.raises(SinkStalled, match="nothing committed past them"):
        sink.flush()
    assert sink.committable == {("fills", 0): 2}
    assert sink.buffered == 4
    store.fail_next = 0                          # the store is back: nothing was lost
    assert sink.flush() == {("fills", 0): 6}
    assert store.rows == [("fills", 0, n) for n in range(6)]


def test_committable_when_batches_span_partitions_then_each_partition_tracked():
    store, clock = FakeStore(), FakeClock()
    seen = []
    sink = make_sink(store, clock, batch_rows=4, max_buffered_rows=8, on_committable=seen.append)
    add(sink, 10, partition=0)
    add(sink, 5, partition=1)
    add(sink, 11, partition=0)
    add(sink, 6, partition=1)
    assert seen == [{("fills", 0): 12, ("fills", 1): 7}]
    assert sink.committable == {("fills", 0): 12, ("fills", 1): 7}


def test_add_when_buffer_full_and_store_down_then_blocks_retrying_instead_of_dropping():
    store, clock = FakeStore(), FakeClock()
    sink = make_sink(store, clock, batch_rows=2, max_buffered_rows=4,
                     retry=RetryPolicy(initial_s=0.5, multiplier=1.0, max_s=0.5, max_attempts=2))
    store.fail_next = 1_000
    for offset in range(4):
        add(sink, offset)                        # buffered: the store is down
    assert sink.buffered == 4
    store.fail_next = 7                          # recovers after 7 more failures
    advanced = add(sink, 4)                      # blocks until the oldest batch is stored
    assert clock.now > 0                         # it waited (backoff), it did not drop
    assert advanced == {("fills", 0): 5}         # then the full batch behind it went too
    sink.flush()
    assert store.rows == [("fills", 0, n) for n in range(5)]
    assert sink.committable == {("fills", 0): 5}


def test_add_when_blocked_longer_than_block_timeout_then_stalled_without_accepting():
    store, clock = FakeStore(fail_next=10_000), FakeClock()
    sink = make_sink(store, clock, batch_rows=1, max_buffered_rows=1, block_timeout_s=3.0,
                     retry=RetryPolicy(initial_s=1.0, multiplier=1.0, max_attempts=2))
    add(sink, 0)
    with pytest.raises(SinkStalled):
        add(sink, 1)
    assert sink.buffered == 1                    # record 1 was refused, not dropped silently
    assert sink.committable == {}
