"""The server backend (clickhouse-connect): the same migrations, ingest and queries as chdb.

No ClickHouse server can be installed on the development machines, so these run only
where CLICKHOUSE_URL points at one (e.g. http://default:@localhost:8123/firetape_test).
"""
from __future__ import annotations

import os

import pytest

from firetape.audit import queries
from firetape.audit.ingest import ingest_log
from firetape.audit.store import open_store
from tests.integration.test_audit_store import RUN, run_log  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(
    not os.environ.get("CLICKHOUSE_URL"),
    reason="CLICKHOUSE_URL is not set: no ClickHouse server to test the server backend on")


@pytest.fixture
def server_store():
    store = open_store(url=os.environ["CLICKHOUSE_URL"])
    yield store
    store.close()


def test_migrate_when_server_then_second_run_applies_nothing(server_store):
    assert server_store.migrate() == []


def test_ingest_when_redelivered_on_server_then_counts_exact(server_store, run_log):  # noqa: F811
    ingest_log(server_store, run_log)
    ingest_log(server_store, run_log, batch_rows=3)
    count = server_store.scalar("SELECT count() FROM events FINAL WHERE run_id = {r:String}",
                                {"r": RUN})
    assert int(count) == 11
    summary = queries.latency_summary(server_store, queries.Filters(run_id=RUN))
    assert summary.loc["decision -> submitted", "orders"] == 1
