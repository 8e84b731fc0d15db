"""The embedded backend: chdb (the ClickHouse engine in-process) on an on-disk directory.

chdb runs one embedded server per process, bound to the first path it is opened with:
any number of sessions may share that path, but a session on another path fails until
every session of the first is closed (chdb 4.x: "EmbeddedServer already initialized
with path ..."). The process-wide registry below mirrors that rule so a second database
gets a clear AuditStoreBusy instead of chdb's error, and so the path is released as soon
as its last store closes.

A read-only store may be opened `lean`: through chdb's engine module alone, without
importing the chdb package, which imports pyarrow, numpy and importlib.metadata and
starts a throw-away in-memory server to read its version (about 0.4 s of a command's
start). `firetape audit latency` opens its store so; the first call that needs the full
package (a DataFrame) switches the store over.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from firetape.audit.store import AuditQueryError, AuditStore, AuditStoreBusy, EventBatch

if TYPE_CHECKING:
    import pandas as pd

_lock = threading.Lock()
_open: dict[Path, int] = {}   # resolved path -> open stores on it (chdb allows one path)
# Inserts from two sessions side by side lost whole batches (docs/audit.md, "Third
# round"): stores on the database, which share it, insert one at a time.
_inserting = threading.Lock()

# ClickHouse appends a stack trace and hints to some messages; the first part is the
# one that tells the user what was wrong.
_MAX_MESSAGE = 600
_WIDE_INT = re.compile(r"^(Nullable\()?U?Int(64|128|256)\b")


def _message(exc: BaseException) -> str:
    text = str(exc).strip().split("\n", 1)[0]
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " ..."


def _engine():
    """chdb's engine, the `chdb._chdb` extension module, loaded the way chdb's own
    __init__ loads it (the library first, with RTLD_DEEPBIND so that its C++ runtime binds
    to itself) but without running that __init__. Registered under its own name, so a
    later `import chdb` uses this very module instead of loading the library again."""
    module = sys.modules.get("chdb._chdb")
    if module is not None:
        return module
    import ctypes
    import importlib.machinery
    import importlib.util

    package = importlib.util.find_spec("chdb")
    if package is None or not package.submodule_search_locations:
        raise ImportError("chdb is not installed")
    for directory in package.submodule_search_locations:
        library = os.path.join(directory, "_chdb.abi3.so")
        if os.path.exists(library):
            break
    else:
        raise ImportError("chdb's engine library not found")
    ctypes.CDLL(library, mode=sys.getdlopenflags() | getattr(os, "RTLD_DEEPBIND", 0))
    loader = importlib.machinery.ExtensionFileLoader("chdb._chdb", library)
    spec = importlib.util.spec_from_file_location("chdb._chdb", library, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules["chdb._chdb"] = module
    return module


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

    def __init__(self, path: Path, *, read_only: bool = False, lean: bool = False) -> None:
        self.path = Path(path).resolve()
        if read_only and not self.path.is_dir():
            raise AuditStoreBusy(f"no audit database at {self.path}")
        self.path.mkdir(parents=True, exist_ok=True)
        self._session = self._lean = None
        self._target = f"{self.path}?mode=ro" if read_only else str(self.path)
        _acquire(self.path)
        try:
            if lean and read_only and "chdb" not in sys.modules:
                try:
                    engine = _engine()
                except (ImportError, OSError, AttributeError):
                    engine = None   # an unexpected chdb layout: the package's way below
                if engine is not None:
                    self._lean = engine.connect(self._target)
            if self._lean is None:
                self._open_session()
        except RuntimeError as exc:
            _release(self.path)
            raise AuditStoreBusy(f"cannot open the audit database {self.path}: "
                                 f"{_message(exc)}") from None
        self.read_only = read_only

    def _open_session(self) -> None:
        from chdb import session as chdb_session

        self._session = chdb_session.Session(self._target)

    def _full(self) -> None:
        """Leave the lean connection for a session of the chdb package (which would fail
        to start its in-memory server while the lean connection is open)."""
        lean, self._lean = self._lean, None
        lean.close()
        try:
            self._open_session()
        except RuntimeError as exc:
            raise AuditQueryError(f"cannot reopen the audit database {self.path}: "
                                  f"{_message(exc)}") from None

    def _run(self, sql: str, fmt: str, params: dict | None):
        if self._lean is not None:
            try:
                return self._lean.query(sql, fmt, params=params or {})
            except RuntimeError as exc:
                raise AuditQueryError(_message(exc)) from None
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

        if self._lean is not None:
            self._full()
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

    def encode(self, batch: EventBatch) -> tuple:
        return batch.to_arrow(with_constants=False), batch.host, batch.clock_source

    def insert_encoded(self, encoded: tuple) -> None:
        # Python(name) makes chdb read the Arrow table in place, through the variable of
        # that name in this frame: no serialisation on the way in. chdb releases the GIL
        # while the statement runs, so another thread may encode the next batch meanwhile.
        # optimize_on_insert = 0: collapsing duplicates inside each new block costs a
        # second sort per table and block; merges and FINAL deduplicate anyway.
        inbox, host, clock = encoded  # noqa: F841 (inbox is read by chdb by name)
        with _inserting:
            self._run("INSERT INTO events_inbox SELECT topic, partition, offset, kafka_ts_ms, "
                      "ts_ingest_ns, {host:String}, {clock_source:String}, record_key, "
                      "payload FROM Python(inbox) SETTINGS parallel_view_processing = 1, "
                      "optimize_on_insert = 0", "CSV",
                      {"host": host, "clock_source": clock})

    def close(self) -> None:
        session, self._session = getattr(self, "_session", None), None
        lean, self._lean = getattr(self, "_lean", None), None
        if session is not None or lean is not None:
            try:
                (session or lean).close()
            finally:
                _release(self.path)

    def __repr__(self) -> str:
        return f"ChdbStore({str(self.path)!r})"
