"""The embedded backend: chdb (the ClickHouse engine in-process) on an on-disk directory.

chdb runs one embedded server per process, bound to the first path it is opened with:
any number of sessions may share that path, but a session on another path fails until
every session of the first is closed (chdb 4.x: "EmbeddedServer already initialized
with path ..."). The process-wide registry below mirrors that rule so a second database
gets a clear AuditStoreBusy instead of chdb's error, and so the path is released as soon
as its last store closes.
"""
from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from chdb import session as chdb_session

from firetape.audit.store import AuditQueryError, AuditStore, AuditStoreBusy, EventBatch

if TYPE_CHECKING:
    import pandas as pd

_lock = threading.Lock()
_open: dict[Path, int] = {}   # resolved path -> open stores on it (chdb allows one path)

# ClickHouse appends a stack trace and hints to some messages; the first part is the
# one that tells the user what was wrong.
_MAX_MESSAGE = 600
_WIDE_INT = re.compile(r"^(Nullable\()?U?Int(64|128|256)\b")


def _message(exc: BaseException) -> str:
    text = str(exc).strip().split("\n", 1)[0]
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " ..."


def _acquire(path: Path) -> None:
    with _lock:
        other = next((p for p, n in _open.items() if n and p != path), None)
        if other is not None:
            raise AuditStoreBusy(
                f"cannot open the audit database {path}: this process already has {other} "
                f"open, and chdb serves one database directory per process")
        _open[path] = _open.get(path, 0) + 1


def _release(path: Path) -> None:
    with _lock:
        _open[path] -= 1
        if not _open[path]:
            del _open[path]


class ChdbStore(AuditStore):
    """An audit database in directory `path` (created if missing)."""

    backend = "chdb"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path).resolve()
        if read_only and not self.path.is_dir():
            raise AuditStoreBusy(f"no audit database at {self.path}")
        self.path.mkdir(parents=True, exist_ok=True)
        _acquire(self.path)
        try:
            target = f"{self.path}?mode=ro" if read_only else str(self.path)
            self._session = chdb_session.Session(target)
        except RuntimeError as exc:
            _release(self.path)
            raise AuditStoreBusy(f"cannot open the audit database {self.path}: "
                                 f"{_message(exc)}") from None
        self.read_only = read_only

    def _run(self, sql: str, fmt: str, params: dict | None):
        if self._session is None:
            raise AuditQueryError(f"the audit database {self.path} is closed")
        try:
            return self._session.query(sql, fmt, params=params or None)
        except RuntimeError as exc:   # chdb's ChdbError is a RuntimeError
            raise AuditQueryError(_message(exc)) from None

    def execute(self, sql: str, params: dict | None = None) -> None:
        self._run(sql, "CSV", params)

    def query_df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        import pandas as pd

        result = self._run(sql, "DataFrame", params)
        return result if isinstance(result, pd.DataFrame) else pd.DataFrame()

    def query_rows(self, sql: str, params: dict | None = None) -> list[list]:
        text = self._run(sql, "JSONCompact", params).bytes()
        if not text:
            return []
        result = json.loads(text)
        # JSON quotes 64-bit integers (they exceed a double); give them back as int.
        wide = [i for i, column in enumerate(result["meta"]) if _WIDE_INT.search(column["type"])]
        rows = result["data"]
        for row in rows:
            for i in wide:
                if isinstance(row[i], str):
                    row[i] = int(row[i])
        return rows

    def query_bytes(self, sql: str, fmt: str, params: dict | None = None) -> bytes:
        return self._run(sql, "Arrow" if fmt == "Arrow" else fmt, params).bytes()

    def insert_batch(self, batch: EventBatch) -> None:
        if not len(batch):
            return
        # Python(name) makes chdb read the Arrow table in place, through the variable of
        # that name in this frame: no serialisation on the way in. The typed views run in
        # parallel: each parses its own few fields of the same block.
        # optimize_on_insert = 0: collapsing duplicates inside each new block costs a
        # second sort per table and block; merges and FINAL deduplicate anyway.
        inbox = batch.to_arrow(with_constants=False)  # noqa: F841 (read by chdb by name)
        self._run("INSERT INTO events_inbox SELECT topic, partition, offset, kafka_ts_ms, "
                  "ts_ingest_ns, {host:String}, {clock_source:String}, record_key, payload "
                  "FROM Python(inbox) SETTINGS parallel_view_processing = 1, "
                  "optimize_on_insert = 0", "CSV",
                  {"host": batch.host, "clock_source": batch.clock_source})

    def close(self) -> None:
        session, self._session = getattr(self, "_session", None), None
        if session is not None:
            try:
                session.close()
            finally:
                _release(self.path)

    def __repr__(self) -> str:
        return f"ChdbStore({str(self.path)!r})"
