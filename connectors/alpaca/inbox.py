"""The control inbox of a live run: operator commands waiting to enter the event log.

A running session owns its event log (one writer), so a second process must not append
to it. `firetape control ...` instead appends the command, encoded with the control
topic's codec, as one line of `<run dir>/control-inbox.jsonl`; the live loop reads new
lines between inputs and publishes them on the control topic, where they are recorded
like any input, so a replay sees them at the same place. On the Kafka runtime the same
command would be produced to the control topic directly.
"""
from __future__ import annotations

import os
from pathlib import Path

from schemas.header import Event
from topics.codec import codec

INBOX = "control-inbox.jsonl"


def post_command(run_dir: Path, event: Event) -> Path:
    """Append `event` to the run's inbox (one write of one line, then fsync)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    path = run_dir / INBOX
    line = codec("control").encode(event) + b"\n"
    # O_APPEND makes one write of one line atomic against other appenders.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_commands(run_dir: Path, offset: int = 0) -> tuple[list[Event], int]:
    """Commands appended since byte `offset`, and the offset to read from next time.

    A line still being written (no newline yet) is left for the next call.
    """
    path = Path(run_dir) / INBOX
    if not path.exists():
        return [], offset
    with path.open("rb") as inbox:
        inbox.seek(offset)
        data = inbox.read()
    complete = data.rfind(b"\n") + 1
    decode = codec("control").decode
    events = [decode(line) for line in data[:complete].splitlines() if line.strip()]
    return events, offset + complete
