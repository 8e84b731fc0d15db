-- The typed views read the inbox beside `events_mv` instead of reading `events` after it,
-- so that ClickHouse runs them side by side (parallel_view_processing) instead of one
-- after the other.
--
-- Before, order_lifecycle, portfolio_valuations and positions were fed by views on
-- `events`: an insert parsed every header, wrote `events`, and only then derived the
-- typed rows, all on one thread. Views on the same source run in parallel, so each of
-- these now reads `events_inbox` itself, keeps only the records that can be its own with
-- a substring test on the raw JSON (cheap: no parse), and parses the header and its own
-- fields in one JSONExtract. The test only narrows: a record is kept when its top-level
-- field says so after the parse (client_order_id not empty; the event's type), exactly
-- the rows the views on `events` took. Order events are a sixth of a run's records, so
-- parsing their headers a second time costs less than the thread gained
-- (docs/audit.md, "Third round").
--
-- The new views are created before the old ones are dropped: an insert that runs in
-- between (a server with a sink writing) goes through both, and the copies collapse, as
-- every redelivery does, on the tables' ReplacingMergeTree keys. order_hops_mv still reads
-- order_lifecycle.

CREATE MATERIALIZED VIEW IF NOT EXISTS inbox_order_lifecycle_mv TO order_lifecycle AS
SELECT
    l.client_order_id AS client_order_id,
    fromUnixTimestamp64Nano(l.ts_event, 'UTC') AS ts_event,
    fromUnixTimestamp64Nano(l.ts_init, 'UTC') AS ts_init,
    fromUnixTimestamp64Nano(ts_ingest_ns, 'UTC') AS ts_ingest,
    if(kafka_ts_ms IS NULL, NULL, fromUnixTimestamp64Milli(assumeNotNull(kafka_ts_ms), 'UTC'))
        AS kafka_ts,
    l.type AS type, l.event_id AS event_id, l.correlation_id AS correlation_id,
    l.causation_id AS causation_id, l.producer AS producer, l.run_id AS run_id,
    l.account AS account, l.strategy AS strategy, l.symbol AS symbol,
    l.broker_order_id AS broker_order_id,
    if(l.type = 'OrderDenied', arrayStringConcat(l.reasons, '; '), l.reason) AS reason,
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
        JSONExtract(payload, 'Tuple(event_id String, type String, correlation_id String, causation_id String, ts_event Int64, ts_init Int64, producer String, run_id String, client_order_id String, symbol String, account String, strategy String, broker_order_id String, reason String, reasons Array(String), quantity String, filled_quantity String, leaves_quantity String, avg_price String, price String, security_type String, side String, order_type String, limit_price String, stop_price String, time_in_force String, ref_price Float64, reduce_only Bool, stop_loss String, take_profit String, parent_id String, fill_id String, commission String, trading_state String, checks Array(Tuple(name String, passed Bool, value String, limit String, reason String)))') AS l
    FROM events_inbox
    WHERE position(payload, '"client_order_id":') > 0
)
WHERE l.client_order_id != '';

CREATE MATERIALIZED VIEW IF NOT EXISTS inbox_portfolio_valuations_mv TO portfolio_valuations AS
SELECT
    v.account AS account, v.event_id AS event_id,
    fromUnixTimestamp64Nano(v.ts_event, 'UTC') AS ts_event,
    fromUnixTimestamp64Nano(v.ts_init, 'UTC') AS ts_init,
    fromUnixTimestamp64Nano(ts_ingest_ns, 'UTC') AS ts_ingest, v.run_id AS run_id,
    toDecimal128OrNull(v.cash, 12) AS cash, toDecimal128OrNull(v.equity, 12) AS equity,
    toDecimal128OrNull(v.gross_exposure, 12) AS gross_exposure,
    toDecimal128OrNull(v.net_exposure, 12) AS net_exposure,
    toDecimal128OrNull(v.realized_pnl, 12) AS realized_pnl,
    toDecimal128OrNull(v.unrealized_pnl, 12) AS unrealized_pnl,
    toDecimal128OrNull(v.commissions, 12) AS commissions,
    toDecimal128OrNull(v.high_water_mark, 12) AS high_water_mark,
    toDecimal128OrNull(v.drawdown, 12) AS drawdown, v.correlation_id AS correlation_id
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(event_id String, type String, correlation_id String, ts_event Int64, ts_init Int64, run_id String, account String, cash String, equity String, gross_exposure String, net_exposure String, realized_pnl String, unrealized_pnl String, commissions String, high_water_mark String, drawdown String)') AS v
    FROM events_inbox
    WHERE position(payload, '"PortfolioValued"') > 0
)
WHERE v.type = 'PortfolioValued';

CREATE MATERIALIZED VIEW IF NOT EXISTS inbox_positions_mv TO positions AS
SELECT
    p.account AS account, p.strategy AS strategy, p.symbol AS symbol, p.event_id AS event_id,
    fromUnixTimestamp64Nano(p.ts_event, 'UTC') AS ts_event,
    fromUnixTimestamp64Nano(ts_ingest_ns, 'UTC') AS ts_ingest, p.run_id AS run_id,
    toDecimal128OrNull(p.quantity, 12) AS quantity,
    toDecimal128OrNull(p.avg_price, 12) AS avg_price,
    toDecimal128OrNull(p.realized_pnl, 12) AS realized_pnl,
    toDecimal128OrNull(p.account_quantity, 12) AS account_quantity, p.fill_id AS fill_id
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(event_id String, type String, ts_event Int64, run_id String, account String, strategy String, symbol String, quantity String, avg_price String, realized_pnl String, account_quantity String, fill_id String)') AS p
    FROM events_inbox
    WHERE position(payload, '"PositionChanged"') > 0
)
WHERE p.type = 'PositionChanged';

DROP VIEW IF EXISTS order_lifecycle_mv;
DROP VIEW IF EXISTS portfolio_valuations_mv;
DROP VIEW IF EXISTS positions_mv;
