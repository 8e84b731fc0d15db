"""Event log records -> audit rows, in batches.

The hot path does as little per-record Python work as it can: records are transposed
into columns in one `zip(*batch)` (C speed), the JSON values go to ClickHouse untouched,
and ClickHouse parses the headers and the typed tables itself (see migrations/). While
chdb inserts one batch, the next is encoded (chdb releases the GIL).

Batches are 250k rows, above ClickHouse's advice for inserts (10k-100k rows): every
insert writes one new part per table (five: events, order_lifecycle, the two portfolio
tables, order_hops) and plans one materialized view per table, about 0.06-0.08 s of CPU
per insert whatever its size (bench/bench_audit.py: batches of 10k run at a fifth of the
rate of batches of 250k, 100k at two thirds). Beyond 250k the rate stops rising (500k and
1M measured no faster) and memory grows with the batch (two batches are alive at once).
"""
from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

from firetape.audit.clock import clock_source, host_name
from firetape.audit.store import AuditStore, EventBatch
from firetape.eventlog import EventLog, Record

DEFAULT_BATCH_ROWS = 250_000


def batch_from_records(records: Sequence[Record], host: str | None = None,
                       clock: str | None = None) -> EventBatch:
    """One EventBatch from event-log records (no broker: kafka_ts is NULL).

    ts_ingest is the record's ts_wall: the wall-clock time at which the hop appended it.
    """
    if not records:
        return EventBatch([], [], [], [], [], [], [], host or host_name(), clock or clock_source())
    topics, partitions, offsets, _ts_event, walls, keys, values = zip(*records)
    return EventBatch(topics, partitions, offsets, [None] * len(values), walls, keys, values,
                      host or host_name(), clock or clock_source())


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of at most `size` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def log_records(log: EventLog) -> Iterator[Record]:
    """Every record of every topic, topic by topic, each partition in offset order."""
    for topic in log.topics():
        yield from log.read(topic)


@contextmanager
def paused_gc():
    """Collector off for the duration. Transposing 50k records allocates enough tuples
    to trigger full collections that walk every live object (all the records held), which
    measured 5-10x slower than the work itself; records hold no cycles to collect."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def ingest_records(store: AuditStore, records: Iterable[Record],
                   batch_rows: int = DEFAULT_BATCH_ROWS) -> int:
    """Insert `records` in batches of `batch_rows`; the number of records inserted.

    Two stages overlap: while one thread inserts a batch (chdb runs the statement without
    holding the GIL), this one transposes and encodes the next. At most one batch is in
    flight, inserts stay in order, and the first failure is raised here.
    """
    host, clock = host_name(), clock_source()
    total = 0
    # Leaving the executor waits for an insert still running (after an error here too).
    with paused_gc(), ThreadPoolExecutor(1, thread_name_prefix="audit-ingest") as inserter:
        pending = None
        for chunk in chunks(records, batch_rows):
            encoded = store.encode(batch_from_records(chunk, host, clock))
            if pending is not None:
                pending.result()
            pending = inserter.submit(store.insert_encoded, encoded)
            total += len(chunk)
        if pending is not None:
            pending.result()
    return total


def ingest_log(store: AuditStore, log_dir: Path, batch_rows: int = DEFAULT_BATCH_ROWS) -> int:
    """Insert every record of the event log at `log_dir`; the number of records.

    Safe to run again on the same log: rows are deduplicated on event_id. Once the whole
    log is in, each order's bar and signal times are resolved into `order_hops`.
    """
    from firetape.audit.queries import resolve_order_origins

    with EventLog(log_dir, mode="r") as log:
        count = ingest_records(store, log_records(log), batch_rows)
    resolve_order_origins(store)
    return count


def compact_order_hops(store: AuditStore) -> None:
    """Fold order_hops to one row per order now rather than whenever merges get to it:
    `audit latency` then groups half the rows (measured 0.33 -> 0.24 s of CPU on ten
    million events, for 0.7 s once). For a run's own database, written once and read
    many times; a shared server database leaves it to the background merges."""
    store.execute("OPTIMIZE TABLE order_hops FINAL")


def mark_ingested(store: AuditStore, run_id: str, events: int) -> None:
    """Record that the whole log of `run_id` is in the store."""
    store.execute("INSERT INTO ingested_runs (run_id, events, ingested_at) "
                  "VALUES ({run_id:String}, {events:UInt64}, now64(6))",
                  {"run_id": run_id, "events": events})


def is_ingested(store: AuditStore, run_id: str) -> bool:
    """Whether the whole log of `run_id` was recorded as ingested."""
    return bool(store.scalar("SELECT count() FROM ingested_runs WHERE run_id = {run_id:String}",
                             {"run_id": run_id}))
