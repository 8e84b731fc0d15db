"""The audit store: one interface over ClickHouse, embedded (chdb) or a server.

Both backends run the same migrations and the same queries; they differ only in how a
statement reaches ClickHouse and how a batch of raw records is shipped. Writers hand
over an `EventBatch` (raw record values, as JSON bytes) and ClickHouse parses it.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # imported where used: `firetape audit latency` never loads pandas
    import pandas as pd
    import pyarrow as pa

# Columns of `events_inbox`, in order (see migrations/0001_events.sql).
INBOX_COLUMNS = ("topic", "partition", "offset", "kafka_ts_ms", "ts_ingest_ns", "host",
                 "clock_source", "record_key", "payload")

# Every table an analyst reads; `export` writes these.
AUDIT_TABLES = ("events", "orders", "order_lifecycle", "fills", "risk_decisions",
                "risk_checks", "portfolio_valuations", "positions")


class AuditError(Exception):
    """An expected failure of the audit (bad query, busy database, ...) with a clear message."""


class AuditQueryError(AuditError):
    """ClickHouse refused a statement (syntax, unknown table or column, ...)."""


class AuditStoreBusy(AuditError):
    """The embedded database cannot be opened now (another one is open in this process)."""


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Raw records for `events_inbox`, column by column.

    `ts_ingest_ns` is the wall-clock time of the hop, taken from the record (the event log's
    ts_wall, or the timestamp the producer stamped in Kafka), never from the sink's own
    clock: a redelivered record must land on the same row. `kafka_ts_ms` is the broker's
    timestamp, None where there is no broker. `host` and `clock_source` are per batch.
    """

    topic: list[str]
    partition: list[int]
    offset: list[int]
    kafka_ts_ms: list[int | None]
    ts_ingest_ns: list[int]
    record_key: list[bytes]
    payload: list[bytes]
    host: str
    clock_source: str

    def __len__(self) -> int:
        return len(self.payload)

    def to_arrow(self, with_constants: bool = True) -> pa.Table:
        """The batch as an Arrow table shaped like `events_inbox` (host and clock_source as
        repeated columns unless `with_constants` is False)."""
        import pyarrow as pa

        n = len(self.payload)
        columns = {
            "topic": pa.array(self.topic, pa.string()),
            "partition": pa.array(self.partition, pa.uint32()),
            "offset": pa.array(self.offset, pa.uint64()),
            "kafka_ts_ms": pa.array(self.kafka_ts_ms, pa.int64()),
            "ts_ingest_ns": pa.array(self.ts_ingest_ns, pa.int64()),
        }
        if with_constants:
            columns["host"] = pa.array([self.host] * n, pa.string())
            columns["clock_source"] = pa.array([self.clock_source] * n, pa.string())
        # Binary, not string: the bytes go to ClickHouse's String as they are, and Arrow
        # skips decoding every payload to check it is UTF-8 (a sixth of the Python side).
        columns["record_key"] = pa.array(self.record_key, pa.binary())
        columns["payload"] = pa.array(self.payload, pa.binary())
        return pa.table(columns)


class AuditStore(ABC):
    """A ClickHouse database holding the audit tables."""

    #: "chdb" or "server", for messages
    backend: str = ""

    @abstractmethod
    def execute(self, sql: str, params: dict | None = None) -> None:
        """Run a statement that returns nothing (DDL, INSERT ... SELECT)."""

    @abstractmethod
    def query_df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run a query; the result as a DataFrame. `params` fill {name:Type} placeholders."""

    @abstractmethod
    def query_rows(self, sql: str, params: dict | None = None) -> list[list]:
        """Run a query; the rows as lists of JSON values (64-bit integers as int, NULL as
        None). Light: no pandas, for small results and a fast command start."""

    @abstractmethod
    def query_bytes(self, sql: str, fmt: str, params: dict | None = None) -> bytes:
        """Run a query; the result serialised by ClickHouse in format `fmt` (Parquet, CSV...)."""

    def insert_batch(self, batch: EventBatch) -> None:
        """Insert raw records into `events_inbox`; returns once the rows are committed."""
        if len(batch):
            self.insert_encoded(self.encode(batch))

    def encode(self, batch: EventBatch) -> object:
        """The batch in the form `insert_encoded` ships (pure Python and Arrow work, no
        database call: a writer may encode the next batch while one is being inserted)."""
        return batch

    @abstractmethod
    def insert_encoded(self, encoded: object) -> None:
        """Insert what `encode` returned for a non-empty batch; returns once committed."""

    @abstractmethod
    def close(self) -> None:
        """Release the database. Idempotent."""

    def migrate(self) -> list[str]:
        """Apply the schema migrations not yet applied; the names of those applied now."""
        from firetape.audit.migrate import apply_migrations

        return apply_migrations(self)

    def scalar(self, sql: str, params: dict | None = None):
        """The single value a query returns (None if it returns no row)."""
        rows = self.query_rows(sql, params)
        return rows[0][0] if rows else None

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_store(db: str | Path | None = None, url: str | None = None, *,
               read_only: bool = False, migrate: bool = True, lean: bool = False) -> AuditStore:
    """The audit database: chdb at directory `db`, else the server at `url` (or the
    CLICKHOUSE_URL environment variable). Migrations are applied unless `migrate` is False.
    `lean` (read-only chdb): open without importing the chdb package, for a fast start."""
    if db is not None:
        from firetape.audit.chdb_store import ChdbStore

        store: AuditStore = ChdbStore(Path(db), read_only=read_only, lean=lean)
    else:
        url = url or os.environ.get("CLICKHOUSE_URL")
        if not url:
            raise AuditError("no audit database: pass --db PATH or --run RUN_DIR, "
                             "or set CLICKHOUSE_URL")
        from firetape.audit.server_store import ServerStore

        store = ServerStore(url)
    if migrate and not read_only:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
