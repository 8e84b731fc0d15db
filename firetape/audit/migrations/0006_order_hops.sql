-- One row per order (after merges) with the wall time of each of its hops, kept up to
-- date at ingest by a view on order_lifecycle, so `firetape audit latency` reads one
-- narrow table instead of grouping every lifecycle event of every order.
--
-- Each lifecycle event contributes a partial row (NULL or '' where it says nothing);
-- AggregatingMergeTree folds the rows of an order with min/max when parts merge, and a
-- reader folds the rest with the same functions (GROUP BY client_order_id), so the
-- result is exact whatever is merged. min and max ignore duplicates: a redelivered event
-- changes nothing. Not partitioned by day: an order whose hops straddle midnight must
-- stay one key of one partition to be folded by merges.
--
-- The bar and the signal do not name the order (the order names them: bar_id and
-- signal_id are the request's correlation_id and causation_id), and may arrive in any
-- batch, before or after it. So t_bar and t_signal are resolved after ingest, by one
-- lookup in `events` for every order still without them (firetape.audit.hops, run when
-- a run's log has been ingested); a reader looks up whatever is still unresolved.

CREATE TABLE IF NOT EXISTS order_hops
(
    client_order_id String,
    run_id          SimpleAggregateFunction(max, String),
    strategy        SimpleAggregateFunction(max, String),
    symbol          SimpleAggregateFunction(max, String),
    bar_id          SimpleAggregateFunction(max, String),
    signal_id       SimpleAggregateFunction(max, String),
    requests        SimpleAggregateFunction(max, UInt8),
    requested_at    SimpleAggregateFunction(min, Nullable(Int64)),
    t_bar           SimpleAggregateFunction(min, Nullable(Int64)),
    t_signal        SimpleAggregateFunction(min, Nullable(Int64)),
    t_decision      SimpleAggregateFunction(min, Nullable(Int64)),
    t_submitted     SimpleAggregateFunction(min, Nullable(Int64)),
    t_accepted      SimpleAggregateFunction(min, Nullable(Int64)),
    t_first_fill    SimpleAggregateFunction(min, Nullable(Int64)),
    t_last_fill     SimpleAggregateFunction(max, Nullable(Int64))
)
ENGINE = AggregatingMergeTree
ORDER BY client_order_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS order_hops_mv TO order_hops AS
SELECT
    client_order_id,
    toString(run_id) AS run_id,
    if(type = 'SubmitOrder', toString(strategy), '') AS strategy,
    if(type = 'SubmitOrder', toString(symbol), '') AS symbol,
    if(type = 'SubmitOrder', correlation_id, '') AS bar_id,
    if(type = 'SubmitOrder', causation_id, '') AS signal_id,
    toUInt8(type = 'SubmitOrder') AS requests,
    if(type = 'SubmitOrder', toUnixTimestamp64Nano(ts_event), NULL) AS requested_at,
    CAST(NULL, 'Nullable(Int64)') AS t_bar,
    CAST(NULL, 'Nullable(Int64)') AS t_signal,
    if(type IN ('OrderApproved', 'OrderDenied'), toUnixTimestamp64Nano(ts_ingest), NULL)
        AS t_decision,
    if(type = 'OrderSubmitted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_submitted,
    if(type = 'OrderAccepted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_accepted,
    if(type = 'FillExecuted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_first_fill,
    if(type = 'FillExecuted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_last_fill
FROM order_lifecycle;

-- A database made before this migration: its orders so far (a re-run of this statement
-- only adds rows that min and max fold away).
INSERT INTO order_hops
SELECT
    client_order_id,
    toString(run_id) AS run_id,
    if(type = 'SubmitOrder', toString(strategy), '') AS strategy,
    if(type = 'SubmitOrder', toString(symbol), '') AS symbol,
    if(type = 'SubmitOrder', correlation_id, '') AS bar_id,
    if(type = 'SubmitOrder', causation_id, '') AS signal_id,
    toUInt8(type = 'SubmitOrder') AS requests,
    if(type = 'SubmitOrder', toUnixTimestamp64Nano(ts_event), NULL) AS requested_at,
    CAST(NULL, 'Nullable(Int64)') AS t_bar,
    CAST(NULL, 'Nullable(Int64)') AS t_signal,
    if(type IN ('OrderApproved', 'OrderDenied'), toUnixTimestamp64Nano(ts_ingest), NULL)
        AS t_decision,
    if(type = 'OrderSubmitted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_submitted,
    if(type = 'OrderAccepted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_accepted,
    if(type = 'FillExecuted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_first_fill,
    if(type = 'FillExecuted', toUnixTimestamp64Nano(ts_ingest), NULL) AS t_last_fill
FROM order_lifecycle;
