"""The replay order of a topic's partitions, merged into one stream.

Rule: records are merged by (ts_event, partition, offset). Among the next unread record
of each partition, the one with the smallest ts_event comes first; equal times go to the
lower partition number, and within a partition offsets never reorder. The order depends
only on the log's content, never on wall time or on how the files were written, so every
replay of the same log sees the same sequence. If a partition's event times go backwards
(late data) its records still keep their offset order; the merge just takes them when they
reach the head of their partition.
"""
from __future__ import annotations

from collections.abc import Iterator
from heapq import merge
from operator import itemgetter

from firetape.eventlog.layout import Record
from firetape.eventlog.log import EventLog

_REPLAY_ORDER = itemgetter(Record._fields.index("ts_event"), Record._fields.index("partition"),
                           Record._fields.index("offset"))


def merge_partitions(log: EventLog, topic: str) -> Iterator[Record]:
    """Every record of `topic`, all partitions merged in replay order (ts_event, partition, offset)."""
    streams = [log.read(topic, partition) for partition in log.partitions(topic)]
    return merge(*streams, key=_REPLAY_ORDER)
