"""The questions the audit answers, as ClickHouse SQL shared by both backends.

Reads that must count rows exactly use FINAL (rows are deduplicated on event_id at merge
time, FINAL does it at read time). The latency query does not need it: it takes the
min or max wall time per order and stage, which a duplicate row cannot change, and that
keeps it fast on tens of millions of events.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # imported where used: `firetape audit latency` never loads pandas
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


def _origin_lookup_sql(orders: str, kind: str) -> str:
    """Wall times of the bars (kind 'bar') or signals ('signal') named by the orders of
    subquery `orders` (columns bar_id / signal_id): columns key, id, t.

    Bars and signals are looked up by 64-bit hashes of their ids (the IN set, and the
    join key in the callers): strings made these lookups 1.6x slower over millions of
    bars. Callers compare the ids themselves after joining, so a hash collision could
    only leave a time unknown, never pair the wrong event."""
    topic = {"bar": "md.bars", "signal": "signals"}[kind]
    return f"""
        SELECT cityHash64(event_id) AS key, any(event_id) AS id,
               min(toUnixTimestamp64Nano(ts_ingest)) AS t
        FROM events
        WHERE topic = '{topic}' AND cityHash64(event_id) IN
            (SELECT cityHash64({kind}_id) FROM {orders} WHERE {kind}_id != '')
        GROUP BY key"""


# One row per order: order_hops read with FINAL, which folds the partial rows of an order
# with the columns' own min/max (SimpleAggregateFunction), exactly as GROUP BY with the
# same functions would, and reads a folded table (a run's, after compact_order_hops)
# without merging anything: 0.07 s instead of 0.16-0.23 s for half a million orders.
# Conditions on the folded values must stay outside (a filter on a partial row would
# drop its siblings' hops): callers wrap this in a subquery and filter that, and
# ClickHouse pushes nothing but sorting-key conditions through FINAL.
_FOLDED_HOPS = """
    SELECT
        client_order_id, run_id, strategy, symbol, bar_id, signal_id,
        cityHash64(bar_id) AS bar_key, cityHash64(signal_id) AS signal_key,
        requests, requested_at, t_bar, t_signal, t_decision, t_submitted, t_accepted,
        t_first_fill, t_last_fill
    FROM order_hops FINAL"""


def _folded_hops(condition: str) -> str:
    """The folded orders that satisfy `condition` (on folded values)."""
    return f"SELECT * FROM ({_FOLDED_HOPS}) WHERE {condition}"


def _order_stage_times_sql(filters: Filters, lookup: bool = True) -> tuple[str, dict]:
    """One row per order request: strategy and the wall-clock ns of each stage (NULL
    where the stage did not happen: a denied order is never submitted).

    Reads `order_hops` (one narrow row per order, kept at ingest; migration 0006) with
    FINAL, which folds whatever rows of an order merges have not folded yet.
    Bars and signals not yet resolved into it (resolve_order_origins) are looked up here
    when `lookup` is true, only for the orders that lack them.
    """
    having, params = ["requests > 0"], {}
    if filters.run_id:
        having.append("run_id = {run_id:String}")
        params["run_id"] = filters.run_id
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
    if not lookup:
        sql = f"""
            SELECT client_order_id, strategy, t_bar, t_signal, t_decision, t_submitted,
                   t_accepted, t_first_fill, t_last_fill
            FROM ({_folded_hops(" AND ".join(having))})
        """
        return sql, params
    sql = f"""
        WITH
            hops AS ({_folded_hops(" AND ".join(having))}),
            unresolved_bars AS (SELECT bar_id FROM hops WHERE t_bar IS NULL),
            unresolved_signals AS (SELECT signal_id FROM hops WHERE t_signal IS NULL)
        SELECT
            o.client_order_id AS client_order_id, o.strategy AS strategy,
            ifNull(o.t_bar, if(b.id = o.bar_id AND b.id != '', b.t, NULL)) AS t_bar,
            ifNull(o.t_signal, if(s.id = o.signal_id AND s.id != '', s.t, NULL)) AS t_signal,
            o.t_decision AS t_decision, o.t_submitted AS t_submitted,
            o.t_accepted AS t_accepted, o.t_first_fill AS t_first_fill,
            o.t_last_fill AS t_last_fill
        FROM hops AS o
        ANY LEFT JOIN ({_origin_lookup_sql("unresolved_bars", "bar")}) AS b
            ON b.key = o.bar_key
        ANY LEFT JOIN ({_origin_lookup_sql("unresolved_signals", "signal")}) AS s
            ON s.key = o.signal_key
    """
    return sql, params


def _needs_lookup(store: AuditStore, filters: Filters) -> bool:
    """Whether some order matching `filters` lacks its bar's or signal's time in
    order_hops (a run not resolved yet, or the Kafka sink's rolling ingest). Asking
    first costs one pass over order_hops and spares a scan of every bar when none does."""
    inner, params = _order_stage_times_sql(filters, lookup=False)
    return bool(store.scalar(f"SELECT count() FROM ({inner}) "
                             "WHERE t_bar IS NULL OR t_signal IS NULL", params))


def resolve_order_origins(store: AuditStore) -> None:
    """Write into `order_hops` the wall times of the bar and the signal of every order
    that does not have them yet, from `events`; idempotent (min of equal values).

    Run after a run's log is ingested: `audit latency` then reads order_hops alone
    instead of looking up millions of bars each time."""
    store.execute(f"""
        INSERT INTO order_hops (client_order_id, t_bar, t_signal)
        WITH
            hops AS ({_folded_hops("requests > 0 AND (t_bar IS NULL OR t_signal IS NULL)")}),
            unresolved_bars AS (SELECT bar_id FROM hops WHERE t_bar IS NULL),
            unresolved_signals AS (SELECT signal_id FROM hops WHERE t_signal IS NULL)
        SELECT client_order_id, t_bar, t_signal
        FROM
        (
            SELECT
                o.client_order_id AS client_order_id,
                if(b.id = o.bar_id AND b.id != '', b.t, NULL) AS t_bar,
                if(s.id = o.signal_id AND s.id != '', s.t, NULL) AS t_signal
            FROM hops AS o
            ANY LEFT JOIN ({_origin_lookup_sql("unresolved_bars", "bar")}) AS b
                ON b.key = o.bar_key
            ANY LEFT JOIN ({_origin_lookup_sql("unresolved_signals", "signal")}) AS s
                ON s.key = o.signal_key
        )
        WHERE t_bar IS NOT NULL OR t_signal IS NOT NULL""")


def _hop_pairs() -> list[tuple[str, str, str]]:
    """(hop name, start stage, end stage) for each hop, then end to end."""
    pairs = [(hop, a, b) for hop, (a, b) in zip(HOPS, zip(STAGES, STAGES[1:]))]
    return [*pairs, (END_TO_END, STAGES[0], STAGES[-1])]


def latency_rows(store: AuditStore, filters: Filters = Filters()) -> list[tuple]:
    """Per hop, then end to end: (hop, orders, p50, p95, p99, max), times in milliseconds
    (None where no order reached the hop). Percentiles are exact (quantilesExact).

    One pass over the orders computes every hop side by side (count and the quantiles
    skip NULL, a hop the order never reached). Plain tuples, no pandas: this is what
    `firetape audit latency` prints.
    """
    columns = []
    for i, (_, a, b) in enumerate(_hop_pairs()):
        v = f"(t_{b} - t_{a})"
        columns.append(f"count({v}) AS n{i}, quantilesExact(0.5, 0.95, 0.99)({v}) AS q{i}, "
                       f"max({v}) AS m{i}")
    # First from order_hops alone, counting the orders whose bar or signal is not
    # resolved there; only if there are any, again with the lookup (one pass, not two,
    # in the usual case).
    for lookup in (False, True):
        inner, params = _order_stage_times_sql(filters, lookup)
        sql = (f"SELECT {', '.join(columns)}, countIf(t_bar IS NULL OR t_signal IS NULL) "
               f"AS unresolved FROM ({inner})")
        (row,) = store.query_rows(sql, params)
        if lookup or not row[-1]:
            break
    result = []
    for i, (hop, _, _) in enumerate(_hop_pairs()):
        orders, q, top = row[3 * i: 3 * i + 3]
        if not orders:
            result.append((hop, 0, None, None, None, None))
        else:
            result.append((hop, int(orders), *(int(x) / NS_PER_MS for x in q),
                           int(top) / NS_PER_MS))
    return result


def latency_summary(store: AuditStore, filters: Filters = Filters()) -> pd.DataFrame:
    """Per hop and end to end: orders (count), p50, p95, p99 and max in milliseconds.

    Percentiles are exact (quantilesExact). A hop no order reached has count 0 and NaN.
    """
    import pandas as pd

    summary = pd.DataFrame(latency_rows(store, filters),
                           columns=["hop", "orders", "p50_ms", "p95_ms", "p99_ms", "max_ms"])
    summary = summary.set_index("hop").astype({c: "float64" for c in
                                               ("p50_ms", "p95_ms", "p99_ms", "max_ms")})
    return summary


def hop_values(store: AuditStore, filters: Filters = Filters()) -> pd.DataFrame:
    """One row per order: strategy and each hop in milliseconds (NaN where missing)."""
    import pandas as pd

    inner, params = _order_stage_times_sql(filters, _needs_lookup(store, filters))
    frame = store.query_df(inner, params)
    hops = pd.DataFrame({"client_order_id": frame["client_order_id"],
                         "strategy": frame["strategy"]})
    for hop, (a, b) in zip(HOPS, zip(STAGES, STAGES[1:])):
        hops[hop] = _ms(frame[f"t_{b}"], frame[f"t_{a}"])
    hops[END_TO_END] = _ms(frame["t_last_fill"], frame["t_bar"])
    return hops


def _ms(end: pd.Series, start: pd.Series) -> np.ndarray:
    import numpy as np

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
    import pandas as pd

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
