"""The questions the audit answers, as ClickHouse SQL shared by both backends.

Reads that must count rows exactly use FINAL (rows are deduplicated on event_id at merge
time, FINAL does it at read time). The latency query does not need it: it takes the
min or max wall time per order and stage, which a duplicate row cannot change, and that
keeps it fast on tens of millions of events.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from firetape.audit.store import AUDIT_TABLES, AuditError, AuditStore

# Stages of an order in pipeline order, and the hops between consecutive ones (the
# issue's list); end to end runs from the bar to the last fill.
STAGES = ("bar", "signal", "decision", "submitted", "accepted", "first_fill", "last_fill")
HOPS = tuple(f"{a} -> {b}" for a, b in zip(STAGES, STAGES[1:]))
END_TO_END = "bar -> last_fill (end to end)"
NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class Filters:
    """What to restrict a query to; None means no restriction. Times are ns since the
    epoch (UTC) and apply to the order's (or row's) ts_event."""

    run_id: str | None = None
    strategy: str | None = None
    symbol: str | None = None
    since: int | None = None
    until: int | None = None

    def where(self, *, time_column: str = "ts_event", strategy: bool = True) -> tuple[str, dict]:
        """A WHERE condition (starting with ' AND' or empty) and its parameters."""
        parts, params = [], {}
        if self.run_id:
            parts.append("run_id = {run_id:String}")
            params["run_id"] = self.run_id
        if strategy and self.strategy:
            parts.append("strategy = {strategy:String}")
            params["strategy"] = self.strategy
        if self.symbol:
            parts.append("symbol = {symbol:String}")
            params["symbol"] = self.symbol
        if self.since is not None:
            parts.append(f"{time_column} >= fromUnixTimestamp64Nano({{since:Int64}}, 'UTC')")
            params["since"] = int(self.since)
        if self.until is not None:
            parts.append(f"{time_column} < fromUnixTimestamp64Nano({{until:Int64}}, 'UTC')")
            params["until"] = int(self.until)
        return "".join(f" AND {p}" for p in parts), params


def require_events(store: AuditStore) -> int:
    """The number of event rows; AuditError if there are none (an empty run, or a
    database nothing was written to)."""
    count = int(store.scalar("SELECT count() FROM events") or 0)
    if not count:
        raise AuditError("the audit database holds no events (an empty run, or nothing "
                         "ingested yet)")
    return count


def _order_stage_times_sql(filters: Filters) -> tuple[str, dict]:
    """One row per order request: strategy and the wall-clock ns of each stage (NULL
    where the stage did not happen: a denied order is never submitted)."""
    run_cond, params = Filters(run_id=filters.run_id).where()
    having = []
    if filters.strategy:
        having.append("strategy = {strategy:String}")
        params["strategy"] = filters.strategy
    if filters.symbol:
        having.append("symbol = {symbol:String}")
        params["symbol"] = filters.symbol
    if filters.since is not None:
        having.append("requested_at >= {since:Int64}")
        params["since"] = int(filters.since)
    if filters.until is not None:
        having.append("requested_at < {until:Int64}")
        params["until"] = int(filters.until)
    having_sql = " AND ".join(["requests > 0", *having])
    # The bar and the signal of an order are found through the request's header: its
    # correlation_id is the bar's event_id, its causation_id the signal's.
    sql = f"""
        SELECT
            o.client_order_id AS client_order_id, o.strategy AS strategy,
            b.t AS t_bar, s.t AS t_signal, o.t_decision AS t_decision,
            o.t_submitted AS t_submitted, o.t_accepted AS t_accepted,
            o.t_first_fill AS t_first_fill, o.t_last_fill AS t_last_fill
        FROM
        (
            SELECT
                client_order_id,
                countIf(type = 'SubmitOrder') AS requests,
                anyIf(strategy, type = 'SubmitOrder') AS strategy,
                anyIf(symbol, type = 'SubmitOrder') AS symbol,
                anyIf(correlation_id, type = 'SubmitOrder') AS bar_id,
                anyIf(causation_id, type = 'SubmitOrder') AS signal_id,
                minOrNullIf(toUnixTimestamp64Nano(ts_event), type = 'SubmitOrder') AS requested_at,
                minOrNullIf(toUnixTimestamp64Nano(ts_ingest), type IN ('OrderApproved', 'OrderDenied')) AS t_decision,
                minOrNullIf(toUnixTimestamp64Nano(ts_ingest), type = 'OrderSubmitted') AS t_submitted,
                minOrNullIf(toUnixTimestamp64Nano(ts_ingest), type = 'OrderAccepted') AS t_accepted,
                minOrNullIf(toUnixTimestamp64Nano(ts_ingest), type = 'FillExecuted') AS t_first_fill,
                maxOrNullIf(toUnixTimestamp64Nano(ts_ingest), type = 'FillExecuted') AS t_last_fill
            FROM order_lifecycle
            WHERE 1 {run_cond}
            GROUP BY client_order_id
            HAVING {having_sql}
        ) AS o
        LEFT JOIN
        (
            SELECT event_id, min(toUnixTimestamp64Nano(ts_ingest)) AS t
            FROM events
            WHERE topic = 'md.bars' AND event_id IN
                (SELECT correlation_id FROM order_lifecycle WHERE type = 'SubmitOrder' {run_cond})
            GROUP BY event_id
        ) AS b ON b.event_id = o.bar_id
        LEFT JOIN
        (
            SELECT event_id, min(toUnixTimestamp64Nano(ts_ingest)) AS t
            FROM events
            WHERE topic = 'signals' AND event_id IN
                (SELECT causation_id FROM order_lifecycle WHERE type = 'SubmitOrder' {run_cond})
            GROUP BY event_id
        ) AS s ON s.event_id = o.signal_id
    """
    return sql, params


def _hops_array_sql() -> str:
    pairs = [f"('{hop}', t_{b} - t_{a})" for hop, (a, b) in zip(HOPS, zip(STAGES, STAGES[1:]))]
    pairs.append(f"('{END_TO_END}', t_last_fill - t_bar)")
    return "[" + ", ".join(pairs) + "]"


def latency_summary(store: AuditStore, filters: Filters = Filters()) -> pd.DataFrame:
    """Per hop and end to end: orders (count), p50, p95, p99 and max in milliseconds.

    Percentiles are exact (quantilesExact). A hop no order reached has count 0 and NaN.
    """
    inner, params = _order_stage_times_sql(filters)
    sql = f"""
        SELECT hop, count() AS orders,
               quantilesExact(0.5, 0.95, 0.99)(v) AS q, max(v) AS max_ns
        FROM
        (
            SELECT arrayJoin({_hops_array_sql()}) AS h, h.1 AS hop, h.2 AS v
            FROM ({inner})
        )
        WHERE v IS NOT NULL
        GROUP BY hop
        SETTINGS join_use_nulls = 1
    """
    frame = store.query_df(sql, params)
    rows = {hop: {"orders": 0, "p50_ms": np.nan, "p95_ms": np.nan, "p99_ms": np.nan,
                  "max_ms": np.nan} for hop in (*HOPS, END_TO_END)}
    for hop, orders, q, max_ns in frame.itertuples(index=False):
        q = list(q)
        rows[hop] = {"orders": int(orders), "p50_ms": q[0] / NS_PER_MS,
                     "p95_ms": q[1] / NS_PER_MS, "p99_ms": q[2] / NS_PER_MS,
                     "max_ms": max_ns / NS_PER_MS}
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "hop"
    return summary


def hop_values(store: AuditStore, filters: Filters = Filters()) -> pd.DataFrame:
    """One row per order: strategy and each hop in milliseconds (NaN where missing)."""
    inner, params = _order_stage_times_sql(filters)
    frame = store.query_df(inner + " SETTINGS join_use_nulls = 1", params)
    hops = pd.DataFrame({"client_order_id": frame["client_order_id"],
                         "strategy": frame["strategy"]})
    for hop, (a, b) in zip(HOPS, zip(STAGES, STAGES[1:])):
        hops[hop] = _ms(frame[f"t_{b}"], frame[f"t_{a}"])
    hops[END_TO_END] = _ms(frame["t_last_fill"], frame["t_bar"])
    return hops


def _ms(end: pd.Series, start: pd.Series) -> np.ndarray:
    # Wall-clock ns (~1.8e18) lose precision as floats, so subtract as integers first.
    delta = end.astype("Int64") - start.astype("Int64")
    return delta.to_numpy(dtype="float64", na_value=np.nan) / NS_PER_MS


@dataclass(frozen=True)
class OrderAudit:
    """Everything recorded about one order."""

    client_order_id: str
    terms: pd.DataFrame        # the order request's material terms (one row)
    timeline: pd.DataFrame     # every event of the chain, bar first, by wall time
    checks: pd.DataFrame       # the risk checks with values and limits
    fills: pd.DataFrame
    broker_order_ids: list[str]


def find_order(store: AuditStore, order_id: str) -> str:
    """The client order id of `order_id` (a client order id or a broker order id);
    AuditError if the audit has no such order."""
    frame = store.query_df(
        "SELECT DISTINCT client_order_id FROM order_lifecycle "
        "WHERE client_order_id = {id:String} OR broker_order_id = {id:String} LIMIT 2",
        {"id": order_id})
    if frame.empty:
        raise AuditError(f"no order {order_id!r} in the audit (neither a client order id "
                         f"nor a broker order id)")
    return str(frame.iat[0, 0])


def order_audit(store: AuditStore, order_id: str) -> OrderAudit:
    """The whole lifecycle of one order, by client order id or broker order id."""
    cid = find_order(store, order_id)
    params = {"cid": cid}
    terms = store.query_df(
        "SELECT client_order_id, account, strategy, symbol, security_type, side, "
        "toString(quantity) AS quantity, order_type, toString(limit_price) AS limit_price, "
        "toString(stop_price) AS stop_price, time_in_force, reduce_only, parent_id, "
        "run_id, ts_event FROM orders FINAL WHERE client_order_id = {cid:String}", params)
    lifecycle = store.query_df(
        "SELECT ts_ingest, ts_event, ts_init, kafka_ts, type, producer, event_id, "
        "causation_id, broker_order_id, reason, toString(quantity) AS quantity, "
        "toString(price) AS price, host, clock_source, topic, partition, offset "
        "FROM order_lifecycle FINAL WHERE client_order_id = {cid:String}", params)
    origin = store.query_df(
        "SELECT ts_ingest, ts_event, ts_init, kafka_ts, type, producer, event_id, "
        "causation_id, '' AS broker_order_id, '' AS reason, '' AS quantity, '' AS price, "
        "host, clock_source, topic, partition, offset FROM events FINAL "
        "WHERE topic IN ('md.bars', 'signals') AND event_id IN "
        "(SELECT arrayJoin([correlation_id, causation_id]) FROM orders "
        " WHERE client_order_id = {cid:String})", params)
    timeline = pd.concat([f for f in (origin, lifecycle) if not f.empty], ignore_index=True) \
        if not (origin.empty and lifecycle.empty) else lifecycle
    timeline = timeline.sort_values(["ts_ingest", "ts_event"], kind="stable",
                                    ignore_index=True)
    checks = store.query_df(
        "SELECT check_index, check_name, passed, value, `limit`, reason, decision_id "
        "FROM risk_checks FINAL WHERE client_order_id = {cid:String} "
        "ORDER BY decision_id, check_index", params)
    fills = store.query_df(
        "SELECT ts_ingest, ts_event, fill_id, broker_order_id, side, toString(quantity) AS "
        "quantity, toString(price) AS price, toString(commission) AS commission, "
        "toString(leaves_quantity) AS leaves_quantity FROM fills FINAL "
        "WHERE client_order_id = {cid:String} ORDER BY ts_ingest", params)
    brokers = sorted({b for b in lifecycle.get("broker_order_id", []) if b})
    return OrderAudit(cid, terms, timeline, checks, fills, brokers)


def decisions(store: AuditStore, filters: Filters = Filters(), *, denied: bool = False,
              by: str | None = None, limit: int = 100) -> pd.DataFrame:
    """Risk decisions, oldest first; or with `by` (reason, strategy, symbol) the number of
    decisions per group, approved and denied."""
    cond, params = filters.where()
    if denied:
        cond += " AND NOT approved"
    if by is None:
        params["limit"] = limit
        return store.query_df(
            "SELECT ts_event, client_order_id, strategy, symbol, side, "
            "toString(quantity) AS quantity, approved, trading_state, "
            "arrayStringConcat(reasons, '; ') AS reasons FROM risk_decisions FINAL "
            f"WHERE 1 {cond} ORDER BY ts_event, client_order_id LIMIT {{limit:UInt64}}",
            params)
    # Denial texts carry the values seen ("gross exposure 0.33 of equity above limit
    # 0.3"), so grouping by them would give one group per order; the failed check's name
    # is the reason's category.
    group = {
        "reason": "arrayJoin(if(empty(failed_checks), ['(approved)'], failed_checks))",
        "strategy": "strategy",
        "symbol": "symbol",
    }.get(by)
    if group is None:
        raise AuditError(f"cannot group decisions by {by!r}: use reason, strategy or symbol")
    return store.query_df(
        f"SELECT {group} AS group_key, count() AS decisions, countIf(approved) AS "
        f"n_approved, countIf(NOT approved) AS n_denied FROM risk_decisions FINAL "
        f"WHERE 1 {cond} GROUP BY group_key ORDER BY decisions DESC, group_key",
        params).rename(columns={"group_key": by, "n_approved": "approved",
                                "n_denied": "denied"})


def orders(store: AuditStore, filters: Filters = Filters(), limit: int = 100) -> pd.DataFrame:
    """Order requests with their material terms and final status, by event time."""
    cond, params = filters.where()
    params["limit"] = limit
    return store.query_df(
        "SELECT o.ts_event AS ts_event, o.client_order_id AS client_order_id, o.account AS "
        "account, o.strategy AS strategy, o.symbol AS symbol, o.security_type AS "
        "security_type, o.side AS side, toString(o.quantity) AS quantity, o.order_type AS "
        "order_type, toString(o.limit_price) AS limit_price, toString(o.stop_price) AS "
        "stop_price, o.time_in_force AS time_in_force, s.status AS status "
        f"FROM (SELECT * FROM orders FINAL WHERE 1 {cond}) AS o "
        "LEFT JOIN (SELECT client_order_id, argMax(type, (ts_ingest, ts_event)) AS status "
        "FROM order_lifecycle WHERE type != 'FillExecuted' GROUP BY client_order_id) AS s "
        "ON s.client_order_id = o.client_order_id "
        "ORDER BY ts_event, client_order_id LIMIT {limit:UInt64}", params)


def fills(store: AuditStore, filters: Filters = Filters(), limit: int = 100) -> pd.DataFrame:
    """Executions with exact quantity, price and commission, by event time."""
    cond, params = filters.where()
    params["limit"] = limit
    return store.query_df(
        "SELECT ts_event, fill_id, client_order_id, broker_order_id, account, strategy, "
        "symbol, side, toString(quantity) AS quantity, toString(price) AS price, "
        "toString(commission) AS commission FROM fills FINAL "
        f"WHERE 1 {cond} ORDER BY ts_event, fill_id LIMIT {{limit:UInt64}}", params)


def run_sql(store: AuditStore, sql: str) -> pd.DataFrame:
    """Any query of the user's; AuditQueryError with ClickHouse's message if refused."""
    if not sql.strip():
        raise AuditError("the query is empty")
    return store.query_df(sql)


EXPORT_FORMATS = {"parquet": ("Parquet", "parquet"), "csv": ("CSVWithNames", "csv")}


def export_tables(store: AuditStore, out_dir: Path, fmt: str,
                  tables: tuple[str, ...] = AUDIT_TABLES) -> list[Path]:
    """Write each table, deduplicated, to OUT_DIR/<table>.<ext>; the files written.

    ClickHouse serialises the file itself, so nothing passes through pandas.
    """
    if fmt not in EXPORT_FORMATS:
        raise AuditError(f"unknown export format {fmt!r}: use parquet or csv")
    unknown = [t for t in tables if t not in AUDIT_TABLES]
    if unknown:
        raise AuditError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(AUDIT_TABLES)}")
    ch_format, ext = EXPORT_FORMATS[fmt]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        path = out_dir / f"{table}.{ext}"
        data = store.query_bytes(f"SELECT * FROM {table} FINAL", ch_format)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)   # a reader never sees half a file
        written.append(path)
    return written
