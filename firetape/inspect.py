"""Human-readable views of the topic registry and of a run's event log."""
from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

from firetape.eventlog import EventLog, merge_partitions
from topics.codec import codec
from topics.registry import REGISTRY, spec

HEADER_FIELDS = {"type", "event_id", "ts_event", "ts_init", "correlation_id", "causation_id",
                 "producer", "run_id", "schema_version"}


def iso(ts_ns: int) -> str:
    """Nanoseconds since the epoch as an ISO time in UTC with microseconds."""
    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def print_registry(console: Console) -> None:
    table = Table(title="firetape topics")
    for column in ("topic", "key", "events", "partitions", "cleanup", "producer", "consumers"):
        table.add_column(column)
    for t in REGISTRY:
        table.add_row(t.name, t.key, ", ".join(v.__name__ for v in t.values), str(t.partitions),
                      t.cleanup, t.producer, ", ".join(t.consumers))
    console.print(table)


def inspect_log(run_dir: Path, topic: str | None, tail: int | None, as_json: bool,
                console: Console) -> None:
    """Print a summary of every topic, or the events of one topic (optionally the last N)."""
    log_dir = run_dir / "log" if (run_dir / "log").is_dir() else run_dir
    if not log_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no event log here")
    with EventLog(log_dir, mode="r") as log:
        if topic is None:
            _summary(log, console)
            return
        spec(topic)  # a KeyError names the known topics
        if topic not in log.topics():
            console.print(f"{topic}: no records in this run")
            return
        records = merge_partitions(log, topic)
        if tail:
            records = deque(records, maxlen=tail)
        decode = codec(topic).decode
        for record in records:
            if as_json:
                print(bytes(record.value).decode())   # raw, never wrapped: one event a line
                continue
            _print_event(console, record, decode)


def _print_event(console: Console, record, decode) -> None:
    try:
        event = decode(record.value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        console.print(f"p{record.partition}@{record.offset} [red]undecodable[/]: {exc}")
        return
    data = msgspec.to_builtins(event)
    body = "  ".join(f"{k}={_short(v)}" for k, v in data.items() if k not in HEADER_FIELDS)
    console.print(f"[dim]p{record.partition}@{record.offset}[/] {iso(event.ts_event)} "
                  f"[bold]{data['type']}[/] {body} [dim]id={event.event_id[:12]}[/]")


def _short(value) -> str:
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _summary(log: EventLog, console: Console) -> None:
    table = Table(title=f"event log {log.path}" if hasattr(log, "path") else "event log")
    for column in ("topic", "partitions", "records", "digest (SHA-256)"):
        table.add_column(column)
    digests = log.digests()
    for topic in log.topics():
        parts = log.partitions(topic)
        records = sum(log.end_offset(topic, p) for p in parts)
        table.add_row(topic, str(len(parts)), f"{records:,}", digests.get(topic, "")[:32])
    console.print(table)
