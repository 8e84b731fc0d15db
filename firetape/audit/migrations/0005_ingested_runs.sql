-- One row per run whose event log was ingested completely: a reader can tell a finished
-- audit from one cut short (it is then rebuilt from the log; ingest is idempotent).

CREATE TABLE IF NOT EXISTS ingested_runs
(
    run_id      String,
    events      UInt64,
    ingested_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY run_id;
