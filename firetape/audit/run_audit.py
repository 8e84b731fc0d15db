"""The audit of one run directory: a chdb database in RUN_DIR/audit built from RUN_DIR/log."""
from __future__ import annotations

import json
from pathlib import Path

import structlog

from firetape.audit.chdb_store import ChdbStore
from firetape.audit.ingest import compact_order_hops, ingest_log, is_ingested, mark_ingested
from firetape.audit.store import AuditError

AUDIT_DIR = "audit"
LOG_DIR = "log"
RUN_FILE = "run.json"

log = structlog.get_logger("firetape.audit")


def run_id_of(run_dir: Path) -> str:
    """The run id recorded in RUN_DIR/run.json."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise AuditError(f"{run_dir}: not a run directory (no {RUN_FILE})")
    try:
        return json.loads(path.read_text())["run_id"]
    except (ValueError, KeyError) as exc:
        raise AuditError(f"{path}: unreadable run file ({exc})") from None


def build_run_audit(run_dir: Path) -> int:
    """Ingest the run's whole event log into RUN_DIR/audit; the number of records.

    Idempotent: a second build (after a crash half-way, say) adds no duplicate rows.
    """
    run_dir = Path(run_dir)
    run_id = run_id_of(run_dir)
    if not (run_dir / LOG_DIR).is_dir():
        raise AuditError(f"{run_dir}: no event log ({LOG_DIR}/)")
    store = ChdbStore(run_dir / AUDIT_DIR)
    try:
        store.migrate()
        count = ingest_log(store, run_dir / LOG_DIR)
        compact_order_hops(store)
        mark_ingested(store, run_id, count)
    finally:
        store.close()
    return count


def ensure_run_audit(run_dir: Path) -> Path:
    """RUN_DIR/audit, built from the log first if it is missing or was cut short."""
    run_dir = Path(run_dir)
    run_id = run_id_of(run_dir)
    audit_dir = run_dir / AUDIT_DIR
    if audit_dir.is_dir():
        store = ChdbStore(audit_dir)
        try:
            store.migrate()
            done = is_ingested(store, run_id)
        finally:
            store.close()
        if done:
            return audit_dir
    build_run_audit(run_dir)
    return audit_dir


def write_run_audit(run_dir: Path) -> int | None:
    """What the embedded runtime calls after a session: build the audit, and on failure
    warn instead of failing a run that is already recorded (the audit can be rebuilt from
    the log at any time: `firetape audit ... --run RUN_DIR` does it on first use)."""
    try:
        return build_run_audit(run_dir)
    except (AuditError, OSError) as exc:
        log.warning("audit_not_written", run_dir=str(run_dir), error=str(exc))
        return None
