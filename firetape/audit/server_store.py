"""The server backend: a ClickHouse server through clickhouse-connect (HTTP).

Used when CLICKHOUSE_URL is set, e.g. http://user:password@clickhouse:8123/firetape. The
URL may hold a password, so it never appears in a message: errors name the host only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from firetape.audit.store import AuditError, AuditQueryError, AuditStore, EventBatch

if TYPE_CHECKING:
    import pandas as pd

def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or ''}"

class ServerStore(AuditStore):
    """The audit tables on a ClickHouse server (the same DDL and queries as chdb)."""

    backend = "server"

    def __init__(self, url: str) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        self._errors = (ClickHouseError,)
        self.where = _where(url)
        try:
            self._client = clickhouse_connect.get_client(dsn=url)
        except ClickHouseError as exc:
            raise AuditError(f"cannot reach ClickHouse at {self.where}: "
                             f"{str(exc).splitlines()[0]}") from None

    def _fail(self, exc: Exception) -> AuditQueryError:
        return AuditQueryError(str(exc).strip().splitlines()[0][:600])

    def execute(self, sql: str, params: dict | None = None) -> None:
        try:
            self._client.command(sql, parameters=params)
        except self._errors as exc:
            raise self._fail(exc) from None

    def query_df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        try:
            return self._client.query_df(sql, parameters=params)
        except self._errors as exc:
            raise self._fail(exc) from None

    def query_rows(self, sql: str, params: dict | None = None) -> list[list]:
        try:
            return [list(row) for row in self._client.query(sql, parameters=params).result_rows]
        except self._errors as exc:
            raise self._fail(exc) from None

    def query_bytes(self, sql: str, fmt: str, params: dict | None = None) -> bytes:
        try:
            return self._client.raw_query(sql, parameters=params, fmt=fmt)
        except self._errors as exc:
            raise self._fail(exc) from None

    def encode(self, batch: EventBatch):
        return batch.to_arrow(with_constants=True)

    def insert_encoded(self, encoded) -> None:
        try:
            # insert_deduplication_token is not used: rows are deduplicated on event_id
            # by the tables themselves, whatever the batch boundaries of a redelivery.
            self._client.insert_arrow("events_inbox", encoded,
                                      settings={"parallel_view_processing": 1,
                                                "optimize_on_insert": 0})
        except self._errors as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()
