-- The portfolio: each valuation of the account (equity, exposure, PnL, drawdown) and each
-- position after a fill.

CREATE TABLE IF NOT EXISTS portfolio_valuations
(
    account         LowCardinality(String),
    event_id        String,
    ts_event        DateTime64(9, 'UTC'),
    ts_init         DateTime64(9, 'UTC'),
    ts_ingest       DateTime64(9, 'UTC'),
    run_id          LowCardinality(String),
    cash            Nullable(Decimal(38, 12)),
    equity          Nullable(Decimal(38, 12)),
    gross_exposure  Nullable(Decimal(38, 12)),
    net_exposure    Nullable(Decimal(38, 12)),
    realized_pnl    Nullable(Decimal(38, 12)),
    unrealized_pnl  Nullable(Decimal(38, 12)),
    commissions     Nullable(Decimal(38, 12)),
    high_water_mark Nullable(Decimal(38, 12)),
    drawdown        Nullable(Decimal(38, 12)),
    correlation_id  String
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (account, ts_event, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS portfolio_valuations_mv TO portfolio_valuations AS
SELECT
    v.account AS account, event_id, ts_event, ts_init, ts_ingest, run_id,
    toDecimal128OrNull(v.cash, 12) AS cash, toDecimal128OrNull(v.equity, 12) AS equity,
    toDecimal128OrNull(v.gross_exposure, 12) AS gross_exposure,
    toDecimal128OrNull(v.net_exposure, 12) AS net_exposure,
    toDecimal128OrNull(v.realized_pnl, 12) AS realized_pnl,
    toDecimal128OrNull(v.unrealized_pnl, 12) AS unrealized_pnl,
    toDecimal128OrNull(v.commissions, 12) AS commissions,
    toDecimal128OrNull(v.high_water_mark, 12) AS high_water_mark,
    toDecimal128OrNull(v.drawdown, 12) AS drawdown, correlation_id
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(account String, cash String, equity String, gross_exposure String, net_exposure String, realized_pnl String, unrealized_pnl String, commissions String, high_water_mark String, drawdown String)') AS v
    FROM events
    WHERE type = 'PortfolioValued'
);

CREATE TABLE IF NOT EXISTS positions
(
    account          LowCardinality(String),
    strategy         LowCardinality(String),
    symbol           LowCardinality(String),
    event_id         String,
    ts_event         DateTime64(9, 'UTC'),
    ts_ingest        DateTime64(9, 'UTC'),
    run_id           LowCardinality(String),
    quantity         Nullable(Decimal(38, 12)),
    avg_price        Nullable(Decimal(38, 12)),
    realized_pnl     Nullable(Decimal(38, 12)),
    account_quantity Nullable(Decimal(38, 12)),
    fill_id          String
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts_ingest)
ORDER BY (account, symbol, ts_event, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS positions_mv TO positions AS
SELECT
    p.account AS account, p.strategy AS strategy, symbol, event_id, ts_event, ts_ingest, run_id,
    toDecimal128OrNull(p.quantity, 12) AS quantity, toDecimal128OrNull(p.avg_price, 12) AS avg_price,
    toDecimal128OrNull(p.realized_pnl, 12) AS realized_pnl,
    toDecimal128OrNull(p.account_quantity, 12) AS account_quantity, p.fill_id AS fill_id
FROM
(
    SELECT *,
        JSONExtract(payload, 'Tuple(account String, strategy String, quantity String, avg_price String, realized_pnl String, account_quantity String, fill_id String)') AS p
    FROM events
    WHERE type = 'PositionChanged'
);
