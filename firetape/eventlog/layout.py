"""The on-disk layout of one topic-partition log file, and the one decoder that reads it.

A file starts with an 8-byte header, then holds records back to back::

    header   magic     6 bytes  b"FTLOG\\x00"
             version   u16      FORMAT_VERSION

    record   length    u32      bytes after the crc field: 28 + len(key) + len(value)
             crc       u32      CRC-32 (zlib.crc32) of those `length` bytes
             offset    u64      0-based, contiguous within the partition
             ts_event  i64      ns since the epoch, UTC: the event's own time
             ts_wall   i64      ns since the epoch, UTC: wall-clock time of the append
             key_len   u32
             key       key_len bytes
             value     length - 28 - key_len bytes

All integers are little-endian. A record is accepted only if it is complete, its length is
in range, its CRC matches and its offset is the one expected next; the first record that
fails any of these ends the readable log (see `read_records`). Nothing after it is ever
decoded, because once one frame is wrong the next frame boundary cannot be trusted.
"""
from __future__ import annotations

import struct
from collections.abc import Generator
from typing import BinaryIO, NamedTuple

from firetape.eventlog.checksum import crc32

MAGIC = b"FTLOG\x00"
FORMAT_VERSION = 1
FILE_HEADER = MAGIC + struct.pack("<H", FORMAT_VERSION)
FILE_HEADER_SIZE = len(FILE_HEADER)

FRAME = struct.Struct("<II")            # length, crc
RECORD_HEAD = struct.Struct("<QqqI")    # offset, ts_event, ts_wall, key_len
FRAME_SIZE = FRAME.size
RECORD_HEAD_SIZE = RECORD_HEAD.size
RECORD_OVERHEAD = FRAME_SIZE + RECORD_HEAD_SIZE

# A bound on `length` lets a reader reject a garbage length at once instead of reading
# to the end of the file looking for a record that was never there.
MAX_RECORD_BYTES = 16 * 1024 * 1024

READ_CHUNK_BYTES = 1024 * 1024


class Record(NamedTuple):
    """One record of a topic-partition, as read back from the log."""

    topic: str
    partition: int
    offset: int
    ts_event: int
    ts_wall: int
    key: bytes
    value: bytes


class Stop(NamedTuple):
    """Where and why `read_records` stopped.

    `reason` is None at a clean end of file; otherwise it says why the bytes from
    `position` on are not a readable record ("short record", "bad length", ...).
    """

    position: int
    next_offset: int
    reason: str | None


def header_problem(raw: bytes) -> str | None:
    """Why `raw` (the first bytes of a file) is not a valid header, or None if it is.

    Returns "torn header" when `raw` is a proper prefix of the header: a file whose
    creation was interrupted, which holds no records and can safely be rewritten.
    """
    if raw == FILE_HEADER:
        return None
    if len(raw) < FILE_HEADER_SIZE and FILE_HEADER.startswith(raw):
        return "torn header"
    if not raw.startswith(MAGIC):
        return "not a firetape event log (bad magic)"
    version = struct.unpack_from("<H", raw, len(MAGIC))[0]
    return f"unsupported format version {version} (this build reads {FORMAT_VERSION})"


def read_records(file: BinaryIO, topic: str, partition: int, position: int,
                 next_offset: int) -> Generator[Record, None, Stop]:
    """Yield the valid records of `file` from byte `position`, which holds `next_offset`.

    Stops at the end of the file or at the first record that is torn or corrupt, and
    returns (as StopIteration.value) a Stop saying where and why.
    """
    file.seek(position)
    new_record = tuple.__new__
    unpack_frame = FRAME.unpack_from
    unpack_head = RECORD_HEAD.unpack_from
    data = b""
    at = 0
    while chunk := file.read(READ_CHUNK_BYTES):
        # Keep the unread tail of the previous chunk: a record may straddle chunks.
        position += at
        data = data[at:] + chunk if at < len(data) else chunk
        at = 0
        size = len(data)
        while at + FRAME_SIZE <= size:
            length, crc = unpack_frame(data, at)
            if length < RECORD_HEAD_SIZE or length > MAX_RECORD_BYTES:
                return Stop(position + at, next_offset, "bad length")
            end = at + FRAME_SIZE + length
            if end > size:
                break
            body = data[at + FRAME_SIZE:end]
            if crc32(body) != crc:
                return Stop(position + at, next_offset, "crc mismatch")
            offset, ts_event, ts_wall, key_len = unpack_head(body)
            if offset != next_offset:
                return Stop(position + at, next_offset, "offset not contiguous")
            key_end = RECORD_HEAD_SIZE + key_len
            if key_end > length:
                return Stop(position + at, next_offset, "bad key length")
            yield new_record(Record, (topic, partition, offset, ts_event, ts_wall,
                                      body[RECORD_HEAD_SIZE:key_end], body[key_end:]))
            next_offset += 1
            at = end
    position += at
    if at < len(data):
        return Stop(position, next_offset, "short record")
    return Stop(position, next_offset, None)


def record_size(record: Record) -> int:
    """Bytes `record` takes in the file."""
    return RECORD_OVERHEAD + len(record.key) + len(record.value)
