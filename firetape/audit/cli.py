"""`firetape audit`: query the order-timing audit.

Which database: --db PATH (a chdb directory), --run RUN_DIR (the run's audit/, built
from its event log on first use), or the server at CLICKHOUSE_URL. --run may also be a
run id, to pick one run out of a shared database. Expected failures (a bad query, an
unknown order, an empty run) end with a message and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from firetape.audit.store import AUDIT_TABLES, AuditError, AuditQueryError

# pandas is imported only where a command needs it: `latency` does without, and so
# starts faster.

console = Console(highlight=False, width=200)
errors = Console(stderr=True, highlight=False)

NOT_FOUND = 1   # exit code: nothing to report (unknown order, empty run)
BAD_INPUT = 2   # exit code: the request itself is wrong (bad SQL, bad option)


def fail(message: str, code: int) -> None:
    errors.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise SystemExit(code)


def parse_time(ctx, param, value: str | None) -> int | None:
    """'2024-01-02', '2024-01-02T14:30:00Z' or ns since the epoch -> ns (UTC)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise click.BadParameter(f"{value!r} is not a time: use e.g. 2024-01-02 or "
                                 f"2024-01-02T14:30:00Z") from None
    if stamp is pd.NaT:
        raise click.BadParameter(f"{value!r} is not a time")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def database_options(command):
    """--db and --run, shared by every subcommand."""
    command = click.option("--run", "run",
                           help="A run directory (uses RUN_DIR/audit) or a run id.")(command)
    command = click.option("--db", "db", type=click.Path(),
                           help="A chdb audit database directory.")(command)
    return command


class Target:
    """The database chosen on the command line, and the run to restrict to."""

    def __init__(self, db: str | None, run: str | None) -> None:
        self.db = db
        self.run_id: str | None = None
        if run:
            run_path = Path(run)
            if run_path.is_dir():
                from firetape.audit.run_audit import ensure_run_audit, run_id_of

                self.run_id = run_id_of(run_path)
                self.db = str(ensure_run_audit(run_path))
            elif db or os.environ.get("CLICKHOUSE_URL"):
                self.run_id = run
            else:
                raise AuditError(f"--run {run}: no such run directory")
        if self.db is None and not os.environ.get("CLICKHOUSE_URL"):
            raise AuditError("no audit database: pass --run RUN_DIR or --db PATH, or set "
                             "CLICKHOUSE_URL")
        if self.db is not None and not Path(self.db).is_dir():
            raise AuditError(f"no audit database at {self.db}")

    def open(self, lean: bool = False):
        from firetape.audit.store import open_store

        # Reads never change the database: chdb opens read-only, and the server's schema
        # is the audit sink's to migrate. `lean`: for a command that needs no DataFrame.
        return open_store(self.db, read_only=True, migrate=False, lean=lean)


def handles_errors(command):
    """Turn the audit's expected failures into a message and an exit code."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AuditQueryError as exc:
            fail(f"ClickHouse refused the query: {exc}", BAD_INPUT)
        except AuditError as exc:
            fail(str(exc), NOT_FOUND)
        except OSError as exc:
            fail(str(exc), NOT_FOUND)
    return wrapper


def _cell(value) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, (list, tuple, dict, str)) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        # Every time in the audit is UTC (titles say so); nanoseconds are kept.
        return (value.tz_convert(None) if value.tzinfo else value).isoformat(sep=" ")
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def print_frame(frame, title: str | None = None) -> None:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


@click.group()
def audit() -> None:
    """Query the order-timing audit: latency per hop, one order's lifecycle, risk
    decisions, orders, fills, export, and any SQL (ClickHouse)."""


@audit.command()
@database_options
@click.option("--strategy", help="Only orders of this strategy.")
@click.option("--since", callback=parse_time, help="Orders with event time >= this (UTC).")
@click.option("--until", callback=parse_time, help="Orders with event time < this (UTC).")
@click.option("--plot", "plot_path", type=click.Path(), help="Write a histogram PNG here.")
@handles_errors
def latency(db, run, strategy, since, until, plot_path):
    """p50, p95, p99 and max per hop, in milliseconds (wall clock of each hop)."""
    from firetape.audit.queries import Filters, hop_values, latency_rows, require_events

    target = Target(db, run)
    filters = Filters(run_id=target.run_id, strategy=strategy, since=since, until=until)
    with target.open(lean=not plot_path) as store:
        require_events(store)
        rows = latency_rows(store, filters)
        if not any(orders for _, orders, *_ in rows):
            raise AuditError("no orders match (nothing to measure)")
        table = Table(title="order latency per hop (ms, wall clock)", title_justify="left")
        for column in ("hop", "orders", "p50", "p95", "p99", "max"):
            table.add_column(column, justify="left" if column == "hop" else "right")
        for hop, orders, *values in rows:
            table.add_row(hop, f"{orders:,}",
                          *("-" if v is None else f"{v:.3f}" for v in values))
        console.print(table)
        if plot_path:
            from firetape.audit.plot import plot_latency

            path = plot_latency(hop_values(store, filters), Path(plot_path))
            console.print(f"histogram  {path}")


@audit.command()
@click.argument("order_id")
@database_options
@handles_errors
def order(order_id, db, run):
    """One order's lifecycle, by client order id or broker order id."""
    from firetape.audit.queries import order_audit

    target = Target(db, run)
    with target.open() as store:
        found = order_audit(store, order_id)
    console.print(f"[bold]order {found.client_order_id}[/]  broker order id(s): "
                  f"{', '.join(found.broker_order_ids) or '-'}")
    if not found.terms.empty:
        terms = found.terms.iloc[0]
        console.print("  ".join(f"{k}={_cell(v)}" for k, v in terms.items() if _cell(v)))
    timeline = found.timeline.copy()
    if not timeline.empty:
        start = timeline["ts_ingest"].iloc[0]
        timeline.insert(1, "+ms", [f"{(t - start).value / 1e6:.3f}"
                                   for t in timeline["ts_ingest"]])
    print_frame(timeline[[c for c in ("ts_ingest", "+ms", "type", "producer", "ts_event",
                                      "ts_init", "kafka_ts", "event_id", "broker_order_id",
                                      "quantity", "price", "reason", "host")
                          if c in timeline]], "events (UTC; ts_ingest is the wall clock of each hop)")
    print_frame(found.checks, "risk checks (value seen, limit applied)")
    print_frame(found.fills, "fills")


@audit.command()
@database_options
@click.option("--denied", is_flag=True, help="Only denials.")
@click.option("--by", type=click.Choice(["reason", "strategy", "symbol"]),
              help="Count decisions per group instead of listing them.")
@click.option("--strategy")
@click.option("--symbol")
@click.option("--since", callback=parse_time)
@click.option("--until", callback=parse_time)
@click.option("--limit", default=100, show_default=True)
@handles_errors
def decisions(db, run, denied, by, strategy, symbol, since, until, limit):
    """Risk decisions (approved and denied) with their reasons."""
    from firetape.audit.queries import Filters, decisions as query, require_events

    target = Target(db, run)
    filters = Filters(run_id=target.run_id, strategy=strategy, symbol=symbol, since=since,
                      until=until)
    with target.open() as store:
        require_events(store)
        print_frame(query(store, filters, denied=denied, by=by, limit=limit),
                    "risk decisions" + (" (denied)" if denied else ""))


def _listing(name: str, query_name: str, help_text: str):
    @audit.command(name, help=help_text)
    @database_options
    @click.option("--since", callback=parse_time, help="Event time >= this (UTC).")
    @click.option("--until", callback=parse_time, help="Event time < this (UTC).")
    @click.option("--symbol")
    @click.option("--strategy")
    @click.option("--limit", default=100, show_default=True)
    @handles_errors
    def command(db, run, since, until, symbol, strategy, limit):
        from firetape.audit import queries

        target = Target(db, run)
        filters = queries.Filters(run_id=target.run_id, strategy=strategy, symbol=symbol,
                                  since=since, until=until)
        with target.open() as store:
            queries.require_events(store)
            print_frame(getattr(queries, query_name)(store, filters, limit), name)
    return command


orders_command = _listing("orders", "orders", "Orders with their material terms and status.")
fills_command = _listing("fills", "fills", "Fills with exact quantity, price and commission.")


@audit.command()
@database_options
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet",
              show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Directory for the files.")
@click.option("--table", "tables", multiple=True, type=click.Choice(AUDIT_TABLES),
              help="Only this table (repeatable); default every table.")
@handles_errors
def export(db, run, fmt, out, tables):
    """Write the audit tables, deduplicated, as Parquet or CSV files."""
    from firetape.audit.queries import export_tables

    target = Target(db, run)
    with target.open() as store:
        written = export_tables(store, Path(out), fmt, tuple(tables) or AUDIT_TABLES)
    for path in written:
        console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


@audit.command()
@click.argument("query")
@database_options
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@handles_errors
def sql(query, db, run, fmt):
    """Run any read-only ClickHouse query, e.g. "SELECT type, count() FROM events FINAL
    GROUP BY type"."""
    from firetape.audit.queries import run_sql

    target = Target(db, run)
    with target.open() as store:
        frame = run_sql(store, query)
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(json.loads(frame.to_json(orient="records", date_format="iso",
                                                       date_unit="ns")), indent=1))
    else:
        print_frame(frame)
