"""Versioned schema migrations, applied idempotently.

Each `migrations/NNNN_name.sql` is applied once, in order, and recorded in
`schema_migrations` with its checksum. Every statement in them is written to be safe to
run again (IF NOT EXISTS), so a crash between a statement and the record only means the
file is re-run next time. An applied file must never change: a different checksum stops
the migration with a clear error instead of leaving two databases with different schemas
under the same version.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from firetape.audit.store import AuditError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The statements of the file: split on ';' at the end of a line, comments dropped."""
        body = "\n".join(line for line in self.sql.splitlines()
                         if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file of `directory`, by version."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.fullmatch(path.name)
        if not match:
            raise AuditError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise AuditError(f"{directory}: two migrations share a version number")
    return found


def applied_migrations(store) -> dict[int, str]:
    """Version -> checksum of the migrations recorded in the database."""
    frame = store.query_df("SELECT version, checksum FROM schema_migrations FINAL")
    return dict(zip(frame["version"].astype(int), frame["checksum"]))


def apply_migrations(store, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is missing, in version order; return the names applied now."""
    store.execute(LEDGER_DDL)
    done = applied_migrations(store)
    applied = []
    for migration in load_migrations(directory):
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise AuditError(
                    f"migration {migration.version:04d}_{migration.name} changed after it "
                    f"was applied; add a new migration instead of editing an applied one")
            continue
        for statement in migration.statements():
            store.execute(statement)
        store.execute("INSERT INTO schema_migrations (version, name, checksum) "
                      "VALUES ({version:UInt32}, {name:String}, {checksum:String})",
                      {"version": migration.version, "name": migration.name,
                       "checksum": migration.checksum})
        applied.append(f"{migration.version:04d}_{migration.name}")
    return applied
