"""The order-timing audit: every event of every topic in ClickHouse, with typed tables
for orders, fills, risk checks and the portfolio, and the queries that answer "how long
did each hop take" and "why was this order allowed or denied".

Embedded runs write it to a chdb database in RUN_DIR/audit; in Kafka mode `AuditSink`
batches records into a server (CLICKHOUSE_URL) or chdb. See docs/audit.md.
"""
from firetape.audit.store import (AUDIT_TABLES, AuditError, AuditQueryError, AuditStore,
                                  AuditStoreBusy, EventBatch, open_store)

__all__ = ["AUDIT_TABLES", "AuditError", "AuditQueryError", "AuditStore", "AuditStoreBusy",
           "EventBatch", "open_store"]
