"""Content digests of topics, to prove two runs wrote byte-identical records.

Only keys and values count, never timestamps: wall time differs between runs while the
content must not. Each partition is hashed alone, records in offset order, each record
as u32 len(key), u32 len(value), key, value (little-endian), so no two different record
sequences give the same bytes. The topic digest is SHA-256 over u32 partition + that
partition's 32-byte digest, partitions ascending: moving a record to another partition
changes it. A topic with no records hashes nothing.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from hashlib import sha256

from firetape.eventlog.layout import Record

_LENGTHS = struct.Struct("<II")
_PARTITION = struct.Struct("<I32s")


def partition_digest(records: Iterable[Record]) -> bytes:
    """SHA-256 (raw bytes) of one partition's records, taken in the order given."""
    content = sha256()
    update = content.update
    pack = _LENGTHS.pack
    for record in records:
        key, value = record.key, record.value
        update(pack(len(key), len(value)) + key + value)
    return content.digest()


def topic_digest(partition_digests: Iterable[tuple[int, bytes]]) -> str:
    """SHA-256 hex over (partition number, partition digest) pairs, in the order given."""
    topic = sha256()
    for partition, digest in partition_digests:
        topic.update(_PARTITION.pack(partition, digest))
    return topic.hexdigest()
