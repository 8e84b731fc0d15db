"""The audit on chdb: migrations, ingest from a real event log, idempotence, queries."""
from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

import schemas as s
from firetape.audit import queries
from firetape.audit.chdb_store import ChdbStore
from firetape.audit.ingest import batch_from_records, ingest_log, log_records
from firetape.audit.migrate import apply_migrations, load_migrations
from firetape.audit.store import AUDIT_TABLES, AuditError, AuditQueryError, AuditStoreBusy
from firetape.eventlog import EventLog
from topics.codec import codec
from topics.partitioner import partition_for
from topics.registry import spec, topic_of

RUN = "run-audit-test"
T0 = 1_704_205_800_000_000_000
WALL0 = 1_800_000_000_000_000_000
MS = 1_000_000


def _header(event_id: str, correlation: str, cause: str, producer: str) -> dict:
    return dict(event_id=event_id, ts_event=T0, ts_init=T0, correlation_id=correlation,
                causation_id=cause, producer=producer, run_id=RUN)


def _checks(passed_gross: bool) -> tuple[s.CheckResult, ...]:
    return (s.CheckResult("kill_switch", True, "released", "released"),
            s.CheckResult("gross_exposure", passed_gross, "0.35" if not passed_gross else "0.1",
                          "0.3", "" if passed_gross else "gross exposure 0.35 above 0.3"))


def chain_events() -> list[tuple[object, int]]:
    """(event, wall ns) of one filled order and one denied order, hops 1 ms apart."""
    bar = s.Bar(**_header("AAA:1", "AAA:1", "", "feed"), symbol="AAA", open=1, high=1, low=1,
                close=1, volume=1)
    signal = s.SignalGenerated(**_header("sig1", "AAA:1", "AAA:1", "strategy"), strategy="sma",
                               symbol="AAA", direction=1, confidence=1.0, price=1.0)
    terms = dict(account="paper", strategy="sma", symbol="AAA", side="BUY",
                 quantity=Decimal("10"))
    request = s.SubmitOrder(**_header("req1", "AAA:1", "sig1", "allocator"),
                            client_order_id="c1", order_type="LIMIT",
                            limit_price=Decimal("1.25"), **terms)
    approved = s.OrderApproved(**_header("dec1", "AAA:1", "req1", "risk"), client_order_id="c1",
                               trading_state="ACTIVE", checks=_checks(True), **terms)
    place = s.PlaceOrder(**_header("place1", "AAA:1", "req1", "risk"), client_order_id="c1",
                         decision_id="dec1", **terms)
    submitted = s.OrderSubmitted(**_header("sub1", "AAA:1", "place1", "execution"),
                                 client_order_id="c1", account="paper", symbol="AAA")
    accepted = s.OrderAccepted(**_header("acc1", "AAA:1", "place1", "execution"),
                               client_order_id="c1", account="paper", symbol="AAA",
                               broker_order_id="B-77")
    fill = s.FillExecuted(**_header("fill1", "AAA:1", "place1", "execution"), fill_id="f1",
                          client_order_id="c1", broker_order_id="B-77", account="paper",
                          strategy="sma", symbol="AAA", side="BUY", quantity=Decimal("10"),
                          price=Decimal("1.2345"), commission=Decimal("0.01"),
                          leaves_quantity=Decimal("0"))
    request2 = s.SubmitOrder(**_header("req2", "AAA:1", "sig1", "allocator"),
                             client_order_id="c2", **terms)
    denied = s.OrderDenied(**_header("dec2", "AAA:1", "req2", "risk"), client_order_id="c2",
                           trading_state="ACTIVE", checks=_checks(False),
                           reasons=("gross exposure 0.35 above 0.3",), **terms)
    valued = s.PortfolioValued(**_header("val1", "AAA:1", "fill1", "portfolio"),
                               account="paper", cash=Decimal("987.65"),
                               equity=Decimal("1000"), gross_exposure=Decimal("12.35"),
                               net_exposure=Decimal("12.35"), realized_pnl=Decimal("0"),
                               unrealized_pnl=Decimal("0"), commissions=Decimal("0.01"),
                               high_water_mark=Decimal("1000"), drawdown=Decimal("0E-12"))
    position = s.PositionChanged(**_header("pos1", "AAA:1", "fill1", "portfolio"),
                                 account="paper", strategy="sma", symbol="AAA",
                                 quantity=Decimal("10"), avg_price=Decimal("1.2345"),
                                 realized_pnl=Decimal("-0.01"), fill_id="f1",
                                 account_quantity=Decimal("10"))
    ordered = [bar, signal, request, approved, place, submitted, accepted, fill, request2,
               denied, valued, position]
    return [(event, WALL0 + i * MS) for i, event in enumerate(ordered)]


@pytest.fixture
def run_log(tmp_path):
    """A real event log holding chain_events()."""
    path = tmp_path / "log"
    with EventLog(path, mode="a") as log:
        for event, wall in chain_events():
            topic = topic_of(type(event))
            topic_codec = codec(topic)
            key = topic_codec.key(event)
            log.append(topic, partition_for(key, spec(topic).partitions), key,
                       topic_codec.encode(event), event.ts_event, wall)
    return path


@pytest.fixture
def store(tmp_path):
    opened = ChdbStore(tmp_path / "audit")
    opened.migrate()
    yield opened
    opened.close()


def counts(store) -> dict[str, int]:
    return {t: int(store.scalar(f"SELECT count() FROM {t} FINAL")) for t in AUDIT_TABLES}


EXPECTED = {"events": 12, "orders": 2, "order_lifecycle": 8, "fills": 1, "risk_decisions": 2,
            "risk_checks": 4, "portfolio_valuations": 1, "positions": 1}


def test_migrate_when_run_twice_then_second_applies_nothing(store):
    assert store.migrate() == []
    versions = store.query_df("SELECT version FROM schema_migrations FINAL ORDER BY version")
    assert list(versions["version"]) == [m.version for m in load_migrations()]


def test_migrate_when_applied_file_changed_then_refuses(store):
    store.execute("ALTER TABLE schema_migrations UPDATE checksum = 'edited' WHERE version = 1 "
                  "SETTINGS mutations_sync = 1")
    with pytest.raises(AuditError, match="changed after it was applied"):
        store.migrate()


def test_ingest_when_log_ingested_then_every_table_filled(store, run_log):
    assert ingest_log(store, run_log) == 12
    assert counts(store) == EXPECTED


def test_ingest_when_same_batch_inserted_twice_then_counts_stay_exact(store, run_log):
    with EventLog(run_log, mode="r") as log:
        batch = batch_from_records(list(log_records(log)))
    store.insert_batch(batch)
    store.insert_batch(batch)   # redelivery of the very same batch
    assert counts(store) == EXPECTED


def test_ingest_when_redelivered_with_other_batch_bounds_then_counts_stay_exact(store, run_log):
    ingest_log(store, run_log, batch_rows=4)
    ingest_log(store, run_log, batch_rows=3)
    store.execute("OPTIMIZE TABLE events FINAL")   # after a merge, even without FINAL
    assert counts(store) == EXPECTED
    assert int(store.scalar("SELECT count() FROM events")) == 12


def test_events_when_ingested_then_header_and_hop_time_kept_exactly(store, run_log):
    ingest_log(store, run_log)
    row = store.query_df(
        "SELECT type, correlation_id, causation_id, producer, run_id, toUnixTimestamp64Nano("
        "ts_ingest) AS wall, toUnixTimestamp64Nano(ts_event) AS ts, kafka_ts, client_order_id "
        "FROM events FINAL WHERE event_id = 'acc1'").iloc[0]
    assert (row["type"], row["correlation_id"], row["causation_id"]) == \
        ("OrderAccepted", "AAA:1", "place1")
    assert (row["producer"], row["run_id"], row["client_order_id"]) == ("execution", RUN, "c1")
    assert int(row["wall"]) == WALL0 + 6 * MS and int(row["ts"]) == T0
    assert pd.isna(row["kafka_ts"])   # NULL: no broker in the embedded runtime


def test_orders_when_ingested_then_material_terms_exact(store, run_log):
    ingest_log(store, run_log)
    row = store.query_df(
        "SELECT symbol, security_type, side, toString(quantity) AS q, order_type, "
        "toString(limit_price) AS lp, stop_price, time_in_force, account, strategy "
        "FROM orders FINAL WHERE client_order_id = 'c1'").iloc[0]
    assert (row["symbol"], row["security_type"], row["side"], row["q"]) == \
        ("AAA", "EQUITY", "BUY", "10")
    assert (row["order_type"], row["lp"], row["time_in_force"]) == ("LIMIT", "1.25", "GTC")
    assert pd.isna(row["stop_price"])
    assert (row["account"], row["strategy"]) == ("paper", "sma")


def test_latency_when_chain_ingested_then_each_hop_in_ms(store, run_log):
    ingest_log(store, run_log)
    summary = queries.latency_summary(store)
    # Walls are 1 ms apart in the order bar, signal, request, decision, place, submitted,
    # accepted, fill.
    expected = {"bar -> signal": 1.0, "signal -> decision": 2.0, "decision -> submitted": 2.0,
                "submitted -> accepted": 1.0, "accepted -> first_fill": 1.0,
                "first_fill -> last_fill": 0.0, queries.END_TO_END: 7.0}
    per_order = queries.hop_values(store).set_index("client_order_id")
    for hop, ms in expected.items():
        assert per_order.loc["c1", hop] == pytest.approx(ms)
    assert summary.loc[queries.END_TO_END, "max_ms"] == pytest.approx(7.0)
    assert summary.loc["bar -> signal", "orders"] == 2           # the denied order too
    assert summary.loc["decision -> submitted", "orders"] == 1   # only the approved one


def test_latency_when_strategy_filter_matches_nothing_then_no_orders(store, run_log):
    ingest_log(store, run_log)
    summary = queries.latency_summary(store, queries.Filters(strategy="other"))
    assert summary["orders"].sum() == 0


def test_order_audit_when_found_by_broker_id_then_whole_lifecycle(store, run_log):
    ingest_log(store, run_log)
    found = queries.order_audit(store, "B-77")
    assert found.client_order_id == "c1"
    assert list(found.timeline["type"]) == [
        "Bar", "SignalGenerated", "SubmitOrder", "OrderApproved", "PlaceOrder",
        "OrderSubmitted", "OrderAccepted", "FillExecuted"]
    assert list(found.checks["check_name"]) == ["kill_switch", "gross_exposure"]
    assert list(found.checks["limit"]) == ["released", "0.3"]
    assert list(found.fills["price"]) == ["1.2345"]
    assert found.broker_order_ids == ["B-77"]


def test_order_audit_when_unknown_id_then_clear_error(store, run_log):
    ingest_log(store, run_log)
    with pytest.raises(AuditError, match="no order 'nope'"):
        queries.order_audit(store, "nope")


def test_decisions_when_grouped_by_reason_then_failed_check_counted(store, run_log):
    ingest_log(store, run_log)
    by_reason = queries.decisions(store, by="reason").set_index("reason")
    assert by_reason.loc["gross_exposure", "denied"] == 1
    assert by_reason.loc["(approved)", "approved"] == 1
    denied = queries.decisions(store, denied=True)
    assert list(denied["client_order_id"]) == ["c2"]


def test_query_when_sql_malformed_then_audit_query_error(store):
    with pytest.raises(AuditQueryError, match="Syntax error"):
        queries.run_sql(store, "SELEC 1")


def test_require_events_when_database_empty_then_clear_error(store):
    with pytest.raises(AuditError, match="holds no events"):
        queries.require_events(store)


def test_export_when_parquet_then_one_file_per_table_with_exact_rows(store, run_log, tmp_path):
    import pyarrow.parquet as pq

    ingest_log(store, run_log)
    written = queries.export_tables(store, tmp_path / "out", "parquet")
    assert {p.stem for p in written} == set(AUDIT_TABLES)
    assert pq.read_table(tmp_path / "out" / "events.parquet").num_rows == 12


def test_open_when_another_database_open_in_process_then_busy(store, tmp_path):
    with pytest.raises(AuditStoreBusy, match="one database directory per process"):
        ChdbStore(tmp_path / "other")


def test_latency_when_origins_resolved_or_not_then_same_hops(store, run_log):
    with EventLog(run_log, mode="r") as log:
        store.insert_batch(batch_from_records(list(log_records(log))))
    looked_up = queries.hop_values(store).set_index("client_order_id")
    assert looked_up.loc["c1", "bar -> signal"] == pytest.approx(1.0)
    queries.resolve_order_origins(store)
    queries.resolve_order_origins(store)   # idempotent
    resolved = queries.hop_values(store).set_index("client_order_id")
    pd.testing.assert_frame_equal(resolved.sort_index(), looked_up.sort_index())
    stored = store.query_rows("SELECT client_order_id, min(t_bar), min(t_signal) FROM "
                              "order_hops GROUP BY client_order_id ORDER BY client_order_id")
    assert [row[0] for row in stored] == ["c1", "c2"]
    assert all(row[1] == WALL0 and row[2] == WALL0 + MS for row in stored)


def test_latency_when_order_hops_unmerged_then_same_as_after_optimize(store, run_log):
    ingest_log(store, run_log, batch_rows=2)
    before = queries.latency_summary(store)
    store.execute("OPTIMIZE TABLE order_hops FINAL")
    assert int(store.scalar("SELECT count() FROM order_hops")) == 2
    pd.testing.assert_frame_equal(queries.latency_summary(store), before)


def test_latency_when_bar_missing_from_audit_then_bar_hops_unknown_not_zero(store, run_log):
    with EventLog(run_log, mode="r") as log:
        records = [r for r in log_records(log) if r.topic != "md.bars"]
    store.insert_batch(batch_from_records(records))
    queries.resolve_order_origins(store)
    summary = queries.latency_summary(store)
    assert summary.loc["bar -> signal", "orders"] == 0
    assert summary.loc[queries.END_TO_END, "orders"] == 0
    assert summary.loc["signal -> decision", "orders"] == 2


def test_latency_when_order_hops_unmerged_and_filtered_then_same_as_after_optimize(store, run_log):
    # strategy and run_id sit on the request's partial row only: a filter applied to the
    # partial rows instead of the folded ones would lose every other hop of the order.
    ingest_log(store, run_log, batch_rows=2)
    filters = queries.Filters(strategy="sma", run_id=RUN)
    before = queries.latency_summary(store, filters)
    assert before.loc["decision -> submitted", "orders"] == 1
    store.execute("OPTIMIZE TABLE order_hops FINAL")
    pd.testing.assert_frame_equal(queries.latency_summary(store, filters), before)


def test_views_when_ingested_then_same_columns_as_the_tables_they_replace(store, run_log):
    ingest_log(store, run_log)
    types = {t: [tuple(r[:2]) for r in store.query_rows(f"DESCRIBE TABLE {t}")]
             for t in ("orders", "fills", "risk_decisions", "risk_checks")}
    assert types["risk_checks"][:5] == [("client_order_id", "String"),
                                        ("decision_id", "String"),
                                        ("check_index", "UInt16"),
                                        ("check_name", "LowCardinality(String)"),
                                        ("passed", "Bool")]
    assert ("approved", "Bool") in types["risk_decisions"]
    assert ("commission", "Nullable(Decimal(38, 12))") in types["fills"]
    assert ("reduce_only", "Bool") in types["orders"]
    # order_lifecycle's details are stored but not part of SELECT *
    columns = store.query_df("SELECT * FROM order_lifecycle FINAL LIMIT 1").columns
    assert "details" not in columns and "details_in" not in columns
    checks = store.query_rows("SELECT decision_id, check_index, check_name, passed, value, "
                              "`limit`, reason, approved FROM risk_checks FINAL "
                              "WHERE client_order_id = 'c2' ORDER BY check_index")
    assert checks == [["dec2", 0, "kill_switch", True, "released", "released", "", False],
                      ["dec2", 1, "gross_exposure", False, "0.35", "0.3",
                       "gross exposure 0.35 above 0.3", False]]


def test_portfolio_tables_when_ingested_then_values_exact(store, run_log):
    ingest_log(store, run_log)
    assert store.query_rows(
        "SELECT account, strategy, symbol, event_id, toString(quantity), toString(avg_price), "
        "toString(realized_pnl), toString(account_quantity), fill_id, run_id "
        "FROM positions FINAL") == [["paper", "sma", "AAA", "pos1", "10", "1.2345", "-0.01",
                                     "10", "f1", RUN]]
    assert store.query_rows(
        "SELECT account, event_id, toString(cash), toString(equity), toString(drawdown), "
        "correlation_id FROM portfolio_valuations FINAL") == [
            ["paper", "val1", "987.65", "1000", "0", "AAA:1"]]


TYPED = {"order_lifecycle": "client_order_id, event_id", "portfolio_valuations": "event_id",
         "positions": "event_id", "order_hops": "client_order_id"}


def _typed_rows(store) -> dict[str, list]:
    """Every typed table, whole rows (hidden details included), in a fixed order."""
    rows = {t: store.query_rows(f"SELECT * FROM {t} FINAL ORDER BY {key}")
            for t, key in TYPED.items()}
    rows["details"] = store.query_rows(
        "SELECT event_id, details FROM order_lifecycle FINAL ORDER BY event_id")
    return rows


def test_migration_0008_when_views_read_the_inbox_then_typed_rows_same_as_views_on_events(
        tmp_path, run_log):
    """Migration 0008 moved the typed views from `events` to the inbox: a database that
    stops at 0007 and one with every migration derive the very same rows; and a database
    made at 0007, migrated with rows in it, takes new records exactly once."""
    old_schema = tmp_path / "migrations-0007"
    old_schema.mkdir()
    for migration in load_migrations():
        if migration.version <= 7:
            (old_schema / f"{migration.version:04d}_{migration.name}.sql").write_text(
                migration.sql)
    with ChdbStore(tmp_path / "old") as old:
        apply_migrations(old, old_schema)
        ingest_log(old, run_log)
        before = _typed_rows(old)
        old.migrate()   # 0008 on a database with rows
        views = {r[0] for r in old.query_rows(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine = 'MaterializedView'")}
        ingest_log(old, run_log)   # redelivered through the new views
        assert _typed_rows(old) == before
        assert counts(old) == EXPECTED
    assert views == {"events_mv", "inbox_order_lifecycle_mv", "inbox_portfolio_valuations_mv",
                     "inbox_positions_mv", "order_hops_mv"}
    with ChdbStore(tmp_path / "new") as new:
        new.migrate()
        ingest_log(new, run_log)
        assert _typed_rows(new) == before



def test_insert_when_two_stores_on_one_database_insert_at_once_then_they_take_turns(
        tmp_path, run_log):
    """Inserts from two chdb sessions side by side lost whole batches (docs/audit.md,
    "Third round"), so stores take turns: no two inserts of a process overlap."""
    import threading
    import time

    stores = [ChdbStore(tmp_path / "audit") for _ in range(2)]
    stores[0].migrate()
    with EventLog(run_log, mode="r") as log:
        batch = batch_from_records(list(log_records(log)))
    spans: list[tuple[float, float]] = []

    def slowed(run):
        def slow_run(sql, fmt, params):
            started = time.perf_counter()
            time.sleep(0.05)
            result = run(sql, fmt, params)
            spans.append((started, time.perf_counter()))
            return result
        return slow_run

    for store in stores:
        store._run = slowed(store._run)
    threads = [threading.Thread(target=lambda st=st: [st.insert_batch(batch)
                                                       for _ in range(3)]) for st in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans.sort()
    assert len(spans) == 6
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert counts(stores[0]) == EXPECTED
    for store in stores:
        store.close()
