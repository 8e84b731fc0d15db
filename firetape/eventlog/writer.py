"""Appending to one topic-partition file: recovery on open, a buffered hot path, fsync.

An append only packs the record into an in-memory buffer; the buffer goes to the file when
it passes `flush_bytes` and on flush(), sync() and close(). A crash can therefore lose the
unflushed records and may leave a torn last record; the next open in append mode cuts the
file back to the end of the last good record (keeping the cut bytes in a quarantine file
beside it), so the offsets continue exactly where the readable records end.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from firetape.eventlog.checksum import crc32
from firetape.eventlog.errors import CorruptLogError, EventLogError
from firetape.eventlog.index import DEFAULT_STRIDE
from firetape.eventlog.layout import (FILE_HEADER, FRAME, FRAME_SIZE, MAX_RECORD_BYTES,
                                      RECORD_HEAD, Stop, header_problem)
from firetape.eventlog.partition import PartitionLog

DEFAULT_FLUSH_BYTES = 1024 * 1024

_pack_frame = FRAME.pack
_pack_head = RECORD_HEAD.pack


class PartitionWriter(PartitionLog):
    """One topic-partition file opened for appending (and reading back)."""

    writable = True
    # append copies key and value before it returns (see EmbeddedBus's encoding buffer).
    copies_values = True

    def __init__(self, path: Path, topic: str, partition: int,
                 index_stride: int = DEFAULT_STRIDE,
                 flush_bytes: int = DEFAULT_FLUSH_BYTES) -> None:
        self._flush_bytes = flush_bytes
        # The buffered records as a list of byte strings, joined once per flush: a
        # bytearray that is emptied and refilled reallocates (and copies) itself a dozen
        # times per MiB on the way back up, which cost more than the CRCs.
        self._chunks: list[bytes] = []
        self._buffered = 0   # bytes in _chunks
        self._broken: OSError | None = None
        self._file = None
        super().__init__(path, topic, partition, index_stride)
        self._next_offset = self._index.next_offset
        self._file = open(self.path, "ab", buffering=0)

    def _open(self) -> None:
        # An appender always scans at once: it must cut a torn tail before writing.
        self._scanned = True
        created = not self.path.exists()
        with open(self.path, "a+b") as file:
            file.seek(0)
            raw = file.read(len(FILE_HEADER))
            problem = header_problem(raw) if raw else None
            if problem and problem != "torn header":
                raise CorruptLogError(f"{self.path}: {problem}")
            if not raw or problem:
                # An interrupted creation: no record can be in the file yet.
                file.truncate(0)
                file.write(FILE_HEADER)
                file.flush()
                os.fsync(file.fileno())
                if created:
                    fsync_directory(self.path.parent)
                if problem:
                    self._report(Stop(0, 0, problem), len(raw), truncated=True)
                return
        stop = self._catch_up()
        if stop.reason:
            self._cut_tail(stop)

    def _cut_tail(self, stop: Stop) -> None:
        quarantine = _free_name(self.path.with_name(f"{self.path.name}.cut.{stop.position}"))
        with open(self.path, "r+b") as file:
            file.seek(stop.position)
            tail = file.read()
            # The cut bytes are kept, not destroyed: after a corruption in the middle of
            # the file they are the only copy of the records that followed it.
            with open(quarantine, "xb") as kept:
                kept.write(tail)
                kept.flush()
                os.fsync(kept.fileno())
            file.truncate(stop.position)
            file.flush()
            os.fsync(file.fileno())
        fsync_directory(self.path.parent)
        self._report(stop, len(tail), truncated=True, quarantine=str(quarantine))

    def _before_read(self) -> None:
        self.flush()

    @property
    def end_offset(self) -> int:
        """The offset the next append gets."""
        return self._next_offset

    def append(self, key: bytes, value: bytes, ts_event: int, ts_wall: int) -> int:
        """Buffer one record; return its offset. Visible to readers after flush().

        `key` and `value` are copied at once: a caller may reuse a bytearray for them.
        """
        offset = self._next_offset
        # One concatenation, then one CRC over it: copying a few hundred bytes costs less
        # than two more crc32 calls over the parts.
        body = _pack_head(offset, ts_event, ts_wall, len(key)) + key + value
        length = len(body)
        if length > MAX_RECORD_BYTES:
            raise ValueError(f"{self.topic}[{self.partition}]: record of {length} bytes exceeds "
                             f"the {MAX_RECORD_BYTES}-byte limit")
        chunks = self._chunks
        chunks.append(_pack_frame(length, crc32(body)))
        chunks.append(body)
        self._next_offset = offset + 1
        self._buffered += FRAME_SIZE + length
        if self._buffered >= self._flush_bytes:
            self.flush()
        return offset

    def append_many(self, records: Iterable[tuple[bytes, bytes, int, int]]) -> range:
        """Buffer (key, value, ts_event, ts_wall) records in order; return their offsets.

        Record by record, so an error mid-batch leaves the records before it buffered and
        the next offset consistent with them.
        """
        first = self._next_offset
        append = self.append
        for key, value, ts_event, ts_wall in records:
            append(key, value, ts_event, ts_wall)
        return range(first, self._next_offset)

    def flush(self) -> None:
        """Write the buffered records to the file (the OS may still hold them)."""
        chunks = self._chunks
        if not chunks:
            return
        if self._broken is not None:
            raise EventLogError(f"{self.path}: an earlier write failed; reopen the log to "
                                "recover") from self._broken
        data = memoryview(b"".join(chunks))
        try:
            written = self._file.write(data)
            while written < len(data):
                written += self._file.write(data[written:])
        except OSError as exc:
            # Part of a record may be on disk now; appending after it would bury a torn
            # record in the middle of the file, so this writer stops for good.
            self._broken = exc
            raise
        chunks.clear()
        self._buffered = 0

    def sync(self) -> None:
        """Flush, then make the file durable (fsync)."""
        self.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush, fsync and close the file. Safe to call twice."""
        if self._file is None or self._file.closed:
            return
        try:
            if self._broken is None:
                self.sync()
        finally:
            self._file.close()


def _free_name(path: Path) -> Path:
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def fsync_directory(directory: Path) -> None:
    """Make the entries of `directory` (a created, cut or renamed file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
