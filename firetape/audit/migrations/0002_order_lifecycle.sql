-- Orders with their material terms (one row per order request, approved or not), every
-- lifecycle event of every order, and the fills. Filled by materialized views on
-- `events`, so they can never disagree with it. Money and quantities are Nullable(Decimal(38, 12)):
-- exact, as on the wire (where they travel as decimal strings).

CREATE TABLE IF NOT EXISTS orders
(
    client_order_id String,
    event_id        String,
    ts_event        DateTime64(9, 'UTC'),
    ts_init         DateTime64(9, 'UTC'),
    ts_ingest       DateTime64(9, 'UTC'),
    run_id          LowCardinality(String),
    account         LowCardinality(String),
    strategy        LowCardinality(String),
    symbol          LowCardinality(String),
    security_type   LowCardinality(String),
    side            LowCardinality(String),
    quantity        Nullable(Decimal(38, 12)),
    order_type      LowCardinality(String),
    limit_price     Nullable(Decimal(38, 12)),
    stop_price      Nullable(Decimal(38, 12)),
    time_in_force   LowCardinality(String),
    ref_price       Float64,
    reduce_only     Bool,
    stop_loss       Nullable(Decimal(38, 12)),
    take_profit     Nullable(Decimal(38, 12)),
    parent_id       String,
    correlation_id  String,
    causation_id    String,
    producer        LowCardinality(String),
    INDEX idx_ts_event ts_event TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (client_order_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS orders_mv TO orders AS
SELECT
    client_order_id, event_id, ts_event, ts_init, ts_ingest, run_id,
    o.account AS account, o.strategy AS strategy, symbol, o.security_type AS security_type,
    o.side AS side, toDecimal128OrNull(o.quantity, 12) AS quantity, o.order_type AS order_type,
    toDecimal128OrNull(o.limit_price, 12) AS limit_price,
    toDecimal128OrNull(o.stop_price, 12) AS stop_price,
    o.time_in_force AS time_in_force, o.ref_price AS ref_price, o.reduce_only AS reduce_only,
    toDecimal128OrNull(o.stop_loss, 12) AS stop_loss,
    toDecimal128OrNull(o.take_profit, 12) AS take_profit,
    o.parent_id AS parent_id, correlation_id, causation_id, producer
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(account String, strategy String, security_type String, side String, quantity String, order_type String, limit_price String, stop_price String, time_in_force String, ref_price Float64, reduce_only Bool, stop_loss String, take_profit String, parent_id String)') AS o
    FROM events
    WHERE type = 'SubmitOrder'
);

CREATE TABLE IF NOT EXISTS order_lifecycle
(
    client_order_id String,
    ts_event        DateTime64(9, 'UTC'),
    ts_init         DateTime64(9, 'UTC'),
    ts_ingest       DateTime64(9, 'UTC'),
    kafka_ts        Nullable(DateTime64(3, 'UTC')),
    type            LowCardinality(String),
    event_id        String,
    correlation_id  String,
    causation_id    String,
    producer        LowCardinality(String),
    run_id          LowCardinality(String),
    account         LowCardinality(String),
    strategy        LowCardinality(String),
    symbol          LowCardinality(String),
    broker_order_id String,
    reason          String,
    quantity        Nullable(Decimal(38, 12)),
    leaves_quantity Nullable(Decimal(38, 12)),
    price           Nullable(Decimal(38, 12)),
    host            LowCardinality(String),
    clock_source    LowCardinality(String),
    topic           LowCardinality(String),
    partition       UInt32,
    offset          UInt64,
    INDEX idx_ts_event ts_event TYPE minmax GRANULARITY 1,
    INDEX idx_broker_order_id broker_order_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (client_order_id, ts_event, event_id);

-- quantity: the order's quantity, a fill's quantity, or the filled quantity so far;
-- price: a fill's price or the average fill price; reason: why rejected, canceled or
-- denied (the failed checks' reasons, '; '-joined).
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
    host, clock_source, topic, partition, offset
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(account String, strategy String, broker_order_id String, reason String, reasons Array(String), quantity String, filled_quantity String, leaves_quantity String, avg_price String, price String)') AS l
    FROM events
    WHERE client_order_id != ''
);

CREATE TABLE IF NOT EXISTS fills
(
    fill_id         String,
    client_order_id String,
    broker_order_id String,
    event_id        String,
    ts_event        DateTime64(9, 'UTC'),
    ts_init         DateTime64(9, 'UTC'),
    ts_ingest       DateTime64(9, 'UTC'),
    kafka_ts        Nullable(DateTime64(3, 'UTC')),
    run_id          LowCardinality(String),
    account         LowCardinality(String),
    strategy        LowCardinality(String),
    symbol          LowCardinality(String),
    side            LowCardinality(String),
    quantity        Nullable(Decimal(38, 12)),
    price           Nullable(Decimal(38, 12)),
    commission      Nullable(Decimal(38, 12)),
    leaves_quantity Nullable(Decimal(38, 12)),
    correlation_id  String,
    causation_id    String,
    INDEX idx_ts_event ts_event TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (client_order_id, ts_event, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS fills_mv TO fills AS
SELECT
    f.fill_id AS fill_id, client_order_id, f.broker_order_id AS broker_order_id, event_id,
    ts_event, ts_init, ts_ingest, kafka_ts, run_id, f.account AS account,
    f.strategy AS strategy, symbol, f.side AS side,
    toDecimal128OrNull(f.quantity, 12) AS quantity, toDecimal128OrNull(f.price, 12) AS price,
    toDecimal128OrNull(f.commission, 12) AS commission,
    toDecimal128OrNull(f.leaves_quantity, 12) AS leaves_quantity, correlation_id, causation_id
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(fill_id String, broker_order_id String, account String, strategy String, side String, quantity String, price String, commission String, leaves_quantity String)') AS f
    FROM events
    WHERE type = 'FillExecuted'
);
