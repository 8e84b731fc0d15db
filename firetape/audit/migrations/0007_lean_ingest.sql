-- Leaner ingest (issue 4's throughput target): fewer tables written per insert, and each
-- order event's JSON parsed once instead of up to three times.
--
-- Every insert planned one materialized view and wrote one new part per typed table; that
-- fixed cost, and parsing the same risk decision (1.5 kB of JSON) for order_lifecycle,
-- risk_decisions and risk_checks, were most of the ingest time (docs/audit.md). Now:
--
-- * order_lifecycle keeps, in a column that `SELECT *` does not return (`details`,
--   MATERIALIZED from the EPHEMERAL `details_in` its view fills), the fields that only
--   orders, fills and risk decisions have, checks included;
-- * orders, fills, risk_decisions and risk_checks become plain views over
--   `order_lifecycle FINAL` with the same columns, types and rows as the tables they
--   replace (each of their rows was an order event, and order_lifecycle holds every
--   event that names a client_order_id, a required field of SubmitOrder, OrderApproved,
--   OrderDenied and FillExecuted). Being deduplicated already, they need no FINAL of
--   their own. They filter on `type` with PREWHERE, before FINAL merges: safe because
--   the rows that FINAL collapses are copies of one event (the key ends in event_id),
--   so they share their type; it reads a third less;
-- * `events` keeps inserted parts in the compact format (one data file instead of two
--   files per column): a new part costs about 13 files instead of 80. Merged parts of
--   more than a million rows still become wide.
--
-- An existing database keeps its data: the order events already in `events` are derived
-- again into order_lifecycle (with their details; ReplacingMergeTree keeps the last
-- insert of a key), and the dropped tables held nothing that `events` does not.

ALTER TABLE events MODIFY SETTING min_rows_for_wide_part = 1048577;

ALTER TABLE order_lifecycle MODIFY SETTING min_rows_for_wide_part = 1048577;

ALTER TABLE order_lifecycle ADD COLUMN IF NOT EXISTS details_in Tuple(security_type LowCardinality(String), side LowCardinality(String), order_type LowCardinality(String), limit_price Nullable(Decimal(38, 12)), stop_price Nullable(Decimal(38, 12)), time_in_force LowCardinality(String), ref_price Float64, reduce_only Bool, stop_loss Nullable(Decimal(38, 12)), take_profit Nullable(Decimal(38, 12)), parent_id String, fill_id String, commission Nullable(Decimal(38, 12)), trading_state LowCardinality(String), reasons Array(String), checks Array(Tuple(name String, passed Bool, value String, limit String, reason String))) EPHEMERAL;

ALTER TABLE order_lifecycle ADD COLUMN IF NOT EXISTS details Tuple(security_type LowCardinality(String), side LowCardinality(String), order_type LowCardinality(String), limit_price Nullable(Decimal(38, 12)), stop_price Nullable(Decimal(38, 12)), time_in_force LowCardinality(String), ref_price Float64, reduce_only Bool, stop_loss Nullable(Decimal(38, 12)), take_profit Nullable(Decimal(38, 12)), parent_id String, fill_id String, commission Nullable(Decimal(38, 12)), trading_state LowCardinality(String), reasons Array(String), checks Array(Tuple(name String, passed Bool, value String, limit String, reason String))) MATERIALIZED details_in;

DROP VIEW IF EXISTS orders_mv;
DROP VIEW IF EXISTS fills_mv;
DROP VIEW IF EXISTS risk_decisions_mv;
DROP VIEW IF EXISTS risk_checks_mv;
DROP VIEW IF EXISTS order_lifecycle_mv;

-- As in 0002, plus the details. Decimals are parsed with toDecimal128OrNull as before.
CREATE MATERIALIZED VIEW IF NOT EXISTS order_lifecycle_mv TO order_lifecycle AS
SELECT
    client_order_id, ts_event, ts_init, ts_ingest, kafka_ts, type, event_id, correlation_id,
    causation_id, producer, run_id, l.account AS account, l.strategy AS strategy, symbol,
    l.broker_order_id AS broker_order_id,
    if(type = 'OrderDenied', arrayStringConcat(l.reasons, '; '), l.reason) AS reason,
    toDecimal128OrNull(if(l.filled_quantity != '', l.filled_quantity, l.quantity), 12)
        AS quantity,
    toDecimal128OrNull(l.leaves_quantity, 12) AS leaves_quantity,
    toDecimal128OrNull(if(l.avg_price != '', l.avg_price, l.price), 12) AS price,
    host, clock_source, topic, partition, offset,
    tuple(l.security_type, l.side, l.order_type, toDecimal128OrNull(l.limit_price, 12),
          toDecimal128OrNull(l.stop_price, 12), l.time_in_force, l.ref_price, l.reduce_only,
          toDecimal128OrNull(l.stop_loss, 12), toDecimal128OrNull(l.take_profit, 12),
          l.parent_id, l.fill_id, toDecimal128OrNull(l.commission, 12), l.trading_state,
          l.reasons, l.checks) AS details_in
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(account String, strategy String, broker_order_id String, reason String, reasons Array(String), quantity String, filled_quantity String, leaves_quantity String, avg_price String, price String, security_type String, side String, order_type String, limit_price String, stop_price String, time_in_force String, ref_price Float64, reduce_only Bool, stop_loss String, take_profit String, parent_id String, fill_id String, commission String, trading_state String, checks Array(Tuple(name String, passed Bool, value String, limit String, reason String)))') AS l
    FROM events
    WHERE client_order_id != ''
);

-- A database made before this migration: its order events again, with their details.
INSERT INTO order_lifecycle (client_order_id, ts_event, ts_init, ts_ingest, kafka_ts, type,
    event_id, correlation_id, causation_id, producer, run_id, account, strategy, symbol,
    broker_order_id, reason, quantity, leaves_quantity, price, host, clock_source, topic,
    partition, offset, details_in)
SELECT
    client_order_id, ts_event, ts_init, ts_ingest, kafka_ts, type, event_id, correlation_id,
    causation_id, producer, run_id, l.account AS account, l.strategy AS strategy, symbol,
    l.broker_order_id AS broker_order_id,
    if(type = 'OrderDenied', arrayStringConcat(l.reasons, '; '), l.reason) AS reason,
    toDecimal128OrNull(if(l.filled_quantity != '', l.filled_quantity, l.quantity), 12)
        AS quantity,
    toDecimal128OrNull(l.leaves_quantity, 12) AS leaves_quantity,
    toDecimal128OrNull(if(l.avg_price != '', l.avg_price, l.price), 12) AS price,
    host, clock_source, topic, partition, offset,
    tuple(l.security_type, l.side, l.order_type, toDecimal128OrNull(l.limit_price, 12),
          toDecimal128OrNull(l.stop_price, 12), l.time_in_force, l.ref_price, l.reduce_only,
          toDecimal128OrNull(l.stop_loss, 12), toDecimal128OrNull(l.take_profit, 12),
          l.parent_id, l.fill_id, toDecimal128OrNull(l.commission, 12), l.trading_state,
          l.reasons, l.checks) AS details_in
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(account String, strategy String, broker_order_id String, reason String, reasons Array(String), quantity String, filled_quantity String, leaves_quantity String, avg_price String, price String, security_type String, side String, order_type String, limit_price String, stop_price String, time_in_force String, ref_price Float64, reduce_only Bool, stop_loss String, take_profit String, parent_id String, fill_id String, commission String, trading_state String, checks Array(Tuple(name String, passed Bool, value String, limit String, reason String)))') AS l
    FROM events FINAL
    WHERE client_order_id != ''
);

DROP TABLE IF EXISTS orders;
CREATE VIEW IF NOT EXISTS orders AS
SELECT
    client_order_id, event_id, ts_event, ts_init, ts_ingest, run_id, account, strategy,
    symbol, details.security_type AS security_type, details.side AS side, quantity,
    details.order_type AS order_type, details.limit_price AS limit_price,
    details.stop_price AS stop_price, details.time_in_force AS time_in_force,
    details.ref_price AS ref_price, details.reduce_only AS reduce_only,
    details.stop_loss AS stop_loss, details.take_profit AS take_profit,
    details.parent_id AS parent_id, correlation_id, causation_id, producer
FROM order_lifecycle FINAL
PREWHERE type = 'SubmitOrder';

DROP TABLE IF EXISTS fills;
CREATE VIEW IF NOT EXISTS fills AS
SELECT
    details.fill_id AS fill_id, client_order_id, broker_order_id, event_id, ts_event,
    ts_init, ts_ingest, kafka_ts, run_id, account, strategy, symbol, details.side AS side,
    quantity, price, details.commission AS commission, leaves_quantity, correlation_id,
    causation_id
FROM order_lifecycle FINAL
PREWHERE type = 'FillExecuted';

DROP TABLE IF EXISTS risk_decisions;
CREATE VIEW IF NOT EXISTS risk_decisions AS
SELECT
    client_order_id, event_id, ts_event, ts_init, ts_ingest, run_id,
    CAST(type = 'OrderApproved', 'Bool') AS approved, account, strategy, symbol,
    details.side AS side, quantity, details.trading_state AS trading_state,
    details.reasons AS reasons,
    arrayMap(c -> c.name, arrayFilter(c -> NOT c.passed, details.checks)) AS failed_checks,
    correlation_id, causation_id
FROM order_lifecycle FINAL
PREWHERE type IN ('OrderApproved', 'OrderDenied');

DROP TABLE IF EXISTS risk_checks;
CREATE VIEW IF NOT EXISTS risk_checks AS
SELECT
    client_order_id, event_id AS decision_id, toUInt16(n - 1) AS check_index,
    CAST(c.name, 'LowCardinality(String)') AS check_name, c.passed AS passed,
    c.value AS value, c.limit AS `limit`, c.reason AS reason,
    CAST(type = 'OrderApproved', 'Bool') AS approved, ts_event, ts_ingest, run_id, account,
    strategy, symbol
FROM order_lifecycle FINAL
ARRAY JOIN
    details.checks AS c,
    arrayEnumerate(details.checks) AS n
PREWHERE type IN ('OrderApproved', 'OrderDenied');
