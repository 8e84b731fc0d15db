-- Every event of every topic, one row each, deduplicated on event_id.
--
-- Writers never insert into `events` directly: they insert the raw record into
-- `events_inbox` (a Null table, it stores nothing) and `events_mv` parses the JSON
-- header once, inside ClickHouse. The client therefore ships only bytes it already has,
-- which is what makes ingest fast, and both backends run the very same statement.
--
-- Redelivery: ReplacingMergeTree collapses rows with the same sorting key, which ends in
-- event_id, and every column of the key is a function of the event itself. Read with
-- FINAL (or aggregate with min/max, which duplicates cannot change) for exact counts.
-- Partitions are days of ts_ingest, the wall clock of the hop: a backtest replaying
-- years of bars is then one partition, not hundreds, and a redelivered record keeps its
-- partition because ts_ingest comes from the record, never from the sink's clock.
--
-- Ingest speed decided two choices (bench/bench_audit.py): the payload keeps the default
-- LZ4 codec (ZSTD halved the insert rate) and there are no skip indexes here (per-order
-- queries read order_lifecycle, which is sorted by client_order_id).

CREATE TABLE IF NOT EXISTS events_inbox
(
    topic           String,
    partition       UInt32,
    offset          UInt64,
    kafka_ts_ms     Nullable(Int64),
    ts_ingest_ns    Int64,
    host            String,
    clock_source    String,
    record_key      String,
    payload         String
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS events
(
    topic           LowCardinality(String),
    partition       UInt32,
    offset          UInt64,
    kafka_ts        Nullable(DateTime64(3, 'UTC')),
    event_id        String,
    type            LowCardinality(String),
    correlation_id  String,
    causation_id    String,
    ts_event        DateTime64(9, 'UTC'),
    ts_init         DateTime64(9, 'UTC'),
    ts_ingest       DateTime64(9, 'UTC'),
    producer        LowCardinality(String),
    run_id          LowCardinality(String),
    schema_version  UInt16,
    host            LowCardinality(String),
    clock_source    LowCardinality(String),
    record_key      String,
    client_order_id String,
    symbol          LowCardinality(String),
    payload         String
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (topic, ts_event, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS events_mv TO events AS
SELECT
    topic,
    partition,
    offset,
    if(kafka_ts_ms IS NULL, NULL, fromUnixTimestamp64Milli(assumeNotNull(kafka_ts_ms), 'UTC'))
        AS kafka_ts,
    h.event_id AS event_id,
    h.type AS type,
    h.correlation_id AS correlation_id,
    h.causation_id AS causation_id,
    fromUnixTimestamp64Nano(h.ts_event, 'UTC') AS ts_event,
    fromUnixTimestamp64Nano(h.ts_init, 'UTC') AS ts_init,
    fromUnixTimestamp64Nano(ts_ingest_ns, 'UTC') AS ts_ingest,
    h.producer AS producer,
    h.run_id AS run_id,
    h.schema_version AS schema_version,
    host,
    clock_source,
    record_key,
    h.client_order_id AS client_order_id,
    h.symbol AS symbol,
    payload
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(event_id String, type String, correlation_id String, causation_id String, ts_event Int64, ts_init Int64, producer String, run_id String, schema_version UInt16, client_order_id String, symbol String)') AS h
    FROM events_inbox
);
