-- Risk decisions: one row per decision, and one row per check of each decision with the
-- value the check saw and the limit it applied (both as text, exactly as risk wrote them).

CREATE TABLE IF NOT EXISTS risk_decisions
(
    client_order_id String,
    event_id        String,
    ts_event        DateTime64(9, 'UTC'),
    ts_init         DateTime64(9, 'UTC'),
    ts_ingest       DateTime64(9, 'UTC'),
    run_id          LowCardinality(String),
    approved        Bool,
    account         LowCardinality(String),
    strategy        LowCardinality(String),
    symbol          LowCardinality(String),
    side            LowCardinality(String),
    quantity        Nullable(Decimal(38, 12)),
    trading_state   LowCardinality(String),
    reasons         Array(String),
    failed_checks   Array(String),
    correlation_id  String,
    causation_id    String,
    INDEX idx_ts_event ts_event TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (client_order_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_decisions_mv TO risk_decisions AS
SELECT
    client_order_id, event_id, ts_event, ts_init, ts_ingest, run_id,
    type = 'OrderApproved' AS approved, d.account AS account, d.strategy AS strategy, symbol,
    d.side AS side, toDecimal128OrNull(d.quantity, 12) AS quantity,
    d.trading_state AS trading_state, d.reasons AS reasons,
    arrayMap(c -> c.1, arrayFilter(c -> NOT c.2, d.checks)) AS failed_checks,
    correlation_id, causation_id
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(account String, strategy String, side String, quantity String, trading_state String, reasons Array(String), checks Array(Tuple(name String, passed Bool)))') AS d
    FROM events
    WHERE type IN ('OrderApproved', 'OrderDenied')
);

CREATE TABLE IF NOT EXISTS risk_checks
(
    client_order_id String,
    decision_id     String,
    check_index     UInt16,
    check_name      LowCardinality(String),
    passed          Bool,
    value           String,
    `limit`         String,
    reason          String,
    approved        Bool,
    ts_event        DateTime64(9, 'UTC'),
    ts_ingest       DateTime64(9, 'UTC'),
    run_id          LowCardinality(String),
    account         LowCardinality(String),
    strategy        LowCardinality(String),
    symbol          LowCardinality(String),
    INDEX idx_ts_event ts_event TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (client_order_id, decision_id, check_index);

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_checks_mv TO risk_checks AS
SELECT
    client_order_id, event_id AS decision_id, toUInt16(n - 1) AS check_index,
    c.name AS check_name, c.passed AS passed, c.value AS value, c.limit AS `limit`,
    c.reason AS reason, approved, ts_event, ts_ingest, run_id, account, strategy, symbol
FROM
(
    -- Filter before ARRAY JOIN: ClickHouse runs ARRAY JOIN before WHERE, so a filter on
    -- the same level would parse the checks of every event, bars included.
    SELECT
        client_order_id, event_id, type = 'OrderApproved' AS approved, ts_event, ts_ingest,
        run_id, symbol,
        JSONExtract(payload, 'Tuple(account String, strategy String, checks Array(Tuple(name String, passed Bool, value String, limit String, reason String)))') AS d,
        d.account AS account, d.strategy AS strategy, d.checks AS checks
    FROM events
    WHERE type IN ('OrderApproved', 'OrderDenied')
)
ARRAY JOIN
    checks AS c,
    arrayEnumerate(checks) AS n;
