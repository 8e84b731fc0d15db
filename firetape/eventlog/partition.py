"""Reading one topic-partition file: the scan when first needed, reads, seeks.

The first use that needs to know where records are (a seek, a read from a later offset,
end_offset, `recovered`) scans the whole file once, checking every record (see
layout.read_records), and builds the sparse index on the way. A read from offset 0 needs
no index: before that scan it streams the file from its header, with the same checks, so
a reader that goes through a log once (the audit, a replay, a digest) reads each file
once instead of twice. A read-only open never changes the file: a torn or corrupt tail
is reported in `recovered` and reads stop before it. Records that appear later (another
process appending) are picked up by the next read, seek or end_offset.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import structlog

from firetape.eventlog.errors import CorruptLogError, ReadOnlyLogError
from firetape.eventlog.index import DEFAULT_STRIDE, SparseIndex
from firetape.eventlog.layout import (FILE_HEADER_SIZE, RECORD_OVERHEAD, Record, Stop,
                                      header_problem, read_records)

log = structlog.get_logger(__name__)

_TS_EVENT = Record._fields.index("ts_event")
_TS_WALL = Record._fields.index("ts_wall")


class Recovery(NamedTuple):
    """What an open found unreadable at the end of a partition file, and what it did.

    `position` is the end of the last good record, `next_offset` the offset the next
    append gets. `truncated` is True when the file was cut there (append mode) and
    `quarantine` names the file that keeps the cut bytes; read-only opens cut nothing.
    """

    topic: str
    partition: int
    path: str
    position: int
    bytes_cut: int
    reason: str
    next_offset: int
    truncated: bool
    quarantine: str | None


class PartitionLog:
    """One topic-partition file, opened read-only."""

    writable = False

    def __init__(self, path: Path, topic: str, partition: int,
                 index_stride: int = DEFAULT_STRIDE) -> None:
        self.path = Path(path)
        self.topic = topic
        self.partition = partition
        self._recovered: Recovery | None = None
        self._index = SparseIndex(FILE_HEADER_SIZE, index_stride)
        self._scanned = False   # whether _index covers the file (see _scan)
        self._open()

    def _open(self) -> None:
        """Check the file header; the records are scanned when first needed (_scan)."""
        with open(self.path, "rb") as file:
            raw = file.read(FILE_HEADER_SIZE)
        problem = header_problem(raw)
        if problem == "torn header":
            self._scanned = True
            self._report(Stop(0, 0, problem), len(raw), truncated=False)
            return
        if problem:
            raise CorruptLogError(f"{self.path}: {problem}")

    def _scan(self) -> None:
        """Index the whole file once, reporting an unreadable tail."""
        if self._scanned:
            return
        self._scanned = True
        stop = self._catch_up()
        if stop.reason and self._recovered is None:
            self._report(stop, self.path.stat().st_size - stop.position, truncated=False)

    @property
    def recovered(self) -> Recovery | None:
        """What was cut (append mode) or found unreadable at the end of the file."""
        self._scan()
        return self._recovered

    def _report(self, stop: Stop, bytes_cut: int, truncated: bool,
                quarantine: str | None = None) -> None:
        self._recovered = Recovery(self.topic, self.partition, str(self.path), stop.position,
                                   bytes_cut, stop.reason or "", stop.next_offset, truncated,
                                   quarantine)
        log.warning("eventlog.tail_cut" if truncated else "eventlog.tail_unreadable",
                    **self._recovered._asdict())

    def _catch_up(self) -> Stop:
        """Index the records written since the index was last extended."""
        index = self._index
        position = index.end_position
        stride = index.stride
        event_max, wall_max = index.event_max, index.wall_max
        with open(self.path, "rb") as file:
            records = read_records(file, self.topic, self.partition, position, index.next_offset)
            while True:
                try:
                    _, _, offset, ts_event, ts_wall, key, value = next(records)
                except StopIteration as done:
                    stop: Stop = done.value
                    break
                # index.note(), inlined for the records inside a block: this loop runs
                # once per record of the file on every open.
                if offset % stride == 0:
                    index.note(offset, position, ts_event, ts_wall)
                else:
                    if ts_event > event_max[-1]:
                        event_max[-1] = ts_event
                    if ts_wall > wall_max[-1]:
                        wall_max[-1] = ts_wall
                position += RECORD_OVERHEAD + len(key) + len(value)
        index.next_offset = stop.next_offset
        index.end_position = stop.position
        return stop

    def _catch_up_if_grown(self) -> None:
        if not self._scanned:
            self._scan()
        elif self.path.stat().st_size > self._index.end_position:
            self._catch_up()

    def _before_read(self) -> None:
        """Hook: a writer makes its buffered records readable first."""

    @property
    def end_offset(self) -> int:
        """The offset the next record gets: the number of readable records."""
        self._catch_up_if_grown()
        return self._index.next_offset

    def append(self, key: bytes, value: bytes, ts_event: int, ts_wall: int) -> int:
        """Refused: the partition was opened read-only."""
        raise ReadOnlyLogError(f"{self.path} is open read-only")

    def read(self, start_offset: int = 0) -> Iterator[Record]:
        """Records from `start_offset` on, in offset order, up to the end of readable data."""
        if start_offset < 0:
            raise ValueError(f"start_offset must be >= 0, got {start_offset}")
        self._before_read()
        if start_offset == 0 and not self._scanned:
            return self._records_from(0, FILE_HEADER_SIZE, 0)
        if start_offset >= self._index.next_offset:
            self._catch_up_if_grown()
        first, position = self._index.locate(start_offset)
        return self._records_from(first, position, start_offset)

    def _records_from(self, first: int, position: int, start_offset: int) -> Iterator[Record]:
        with open(self.path, "rb") as file:
            records = read_records(file, self.topic, self.partition, position, first)
            if first < start_offset:
                for record in records:
                    if record.offset + 1 >= start_offset:
                        break
            stop = yield from records
        if stop is not None and stop.reason and self._recovered is None:
            # A read that met the unreadable tail before any scan did: say so now.
            self._report(stop, self.path.stat().st_size - stop.position, truncated=False)

    def offset_for_time(self, ts_event: int) -> int:
        """Offset of the first record with ts_event >= `ts_event`; end_offset if none."""
        return self._seek(ts_event, self._index.block_for_event_time, _TS_EVENT)

    def offset_for_wall_time(self, ts_wall: int) -> int:
        """Offset of the first record with ts_wall >= `ts_wall`; end_offset if none."""
        return self._seek(ts_wall, self._index.block_for_wall_time, _TS_WALL)

    def _seek(self, ts: int, find_block: Callable[[int], tuple[int, int] | None],
              field: int) -> int:
        self._before_read()
        self._catch_up_if_grown()
        block = find_block(ts)
        if block is not None:
            first, position = block
            for record in self._records_from(first, position, first):
                if record[field] >= ts:
                    return record.offset
        return self._index.next_offset

    def flush(self) -> None:
        """Nothing to write on a read-only partition."""

    def sync(self) -> None:
        """Nothing to write on a read-only partition."""

    def close(self) -> None:
        """Nothing held open between reads on a read-only partition."""
