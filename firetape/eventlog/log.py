"""The event log of the embedded runtime: a directory with one file per topic-partition.

Layout: ``LOGDIR/<topic>/<partition>.log`` (e.g. ``run/md.bars/3.log``), topic names as
in topics.registry. Only one writer may hold a directory at a time (an exclusive lock on
``LOGDIR/.lock``); any number of read-only opens may run beside it.

Every existing partition is opened when the log is opened. In mode "a" that scans and
recovers it at once; in mode "r" a partition is scanned when first needed (see
partition.py). `recovered` lists what was cut or found unreadable.
"""
from __future__ import annotations

import fcntl
import re
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from time import time_ns

from firetape.eventlog.digest import partition_digest, topic_digest
from firetape.eventlog.errors import LogLockedError, ReadOnlyLogError
from firetape.eventlog.index import DEFAULT_STRIDE
from firetape.eventlog.layout import Record
from firetape.eventlog.partition import PartitionLog, Recovery
from firetape.eventlog.writer import DEFAULT_FLUSH_BYTES, PartitionWriter, fsync_directory

# Kafka's rule for topic names, so a topic here is a valid topic there.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PARTITION_FILE = re.compile(r"(0|[1-9][0-9]*)\.log")


class EventLog:
    """Append-only, crash-safe topic-partition logs under one directory.

    mode "a" creates the directory if needed, cuts torn tails and allows appends;
    mode "r" changes nothing on disk.
    """

    def __init__(self, path: str | Path, mode: str = "a", *,
                 flush_bytes: int = DEFAULT_FLUSH_BYTES,
                 index_stride: int = DEFAULT_STRIDE) -> None:
        if mode not in ("a", "r"):
            raise ValueError(f"mode must be 'a' or 'r', got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._flush_bytes = flush_bytes
        self._index_stride = index_stride
        self._partitions: dict[str, dict[int, PartitionLog]] = {}
        self._lock = None
        if mode == "a":
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = _lock_directory(self.path)
        elif not self.path.is_dir():
            raise FileNotFoundError(f"no event log at {self.path}")
        try:
            self._open_existing()
        except BaseException:
            self.close()
            raise

    def _open_existing(self) -> None:
        for topic_dir in sorted(self.path.iterdir()):
            if not topic_dir.is_dir() or not _is_topic_name(topic_dir.name):
                continue
            numbers = sorted(int(m.group(1)) for f in topic_dir.iterdir()
                             if (m := _PARTITION_FILE.fullmatch(f.name)))
            for partition in numbers:
                self._open_partition(topic_dir.name, partition)

    def _open_partition(self, topic: str, partition: int) -> PartitionLog:
        path = self.path / topic / f"{partition}.log"
        if self.mode == "a":
            opened: PartitionLog = PartitionWriter(path, topic, partition, self._index_stride,
                                                   self._flush_bytes)
        else:
            opened = PartitionLog(path, topic, partition, self._index_stride)
        self._partitions.setdefault(topic, {})[partition] = opened
        return opened

    def _new_partition(self, topic: str, partition: int) -> PartitionLog:
        if self.mode != "a":
            raise ReadOnlyLogError(f"{self.path} is open read-only")
        if not _is_topic_name(topic):
            raise ValueError(f"bad topic name {topic!r}: use 1-249 of [A-Za-z0-9._-], not . or ..")
        if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
            raise ValueError(f"partition must be an int >= 0, got {partition!r}")
        topic_dir = self.path / topic
        if not topic_dir.is_dir():
            topic_dir.mkdir()
            fsync_directory(self.path)
        created = self._open_partition(topic, partition)
        # A topic's partitions stay in ascending order for every reader.
        self._partitions[topic] = dict(sorted(self._partitions[topic].items()))
        return created

    def partition_log(self, topic: str, partition: int) -> PartitionLog:
        """The handle of one partition, for hot loops: its append(key, value, ts_event,
        ts_wall) skips the topic lookup. Created in mode "a"; KeyError in mode "r" if absent.
        """
        try:
            return self._partitions[topic][partition]
        except KeyError:
            if self.mode == "r":
                raise KeyError(f"{self.path} has no partition {topic}[{partition}]") from None
            return self._new_partition(topic, partition)

    @property
    def recovered(self) -> list[Recovery]:
        """Every partition whose tail was cut (mode "a") or is unreadable (mode "r")."""
        return [p.recovered for by_number in self._partitions.values()
                for p in by_number.values() if p.recovered is not None]

    def append(self, topic: str, partition: int, key: bytes, value: bytes, ts_event: int,
               ts_wall: int | None = None) -> int:
        """Append one record; return its offset. `ts_wall` defaults to the wall clock now."""
        try:
            target = self._partitions[topic][partition]
        except KeyError:
            target = self._new_partition(topic, partition)
        return target.append(key, value, ts_event, time_ns() if ts_wall is None else ts_wall)

    def append_many(self, topic: str, partition: int,
                    records: Iterable[tuple[bytes, bytes, int, int]]) -> range:
        """Append (key, value, ts_event, ts_wall) records to one partition; return their offsets."""
        try:
            target = self._partitions[topic][partition]
        except KeyError:
            target = self._new_partition(topic, partition)
        if not target.writable:
            raise ReadOnlyLogError(f"{self.path} is open read-only")
        return target.append_many(records)

    def read(self, topic: str, partition: int | None = None,
             start_offset: int = 0) -> Iterator[Record]:
        """Records of one partition from `start_offset`, or of all partitions (None).

        With partition None each partition is read in offset order, partitions in
        ascending number, each from `start_offset`. An unknown topic or partition reads
        as empty. In mode "a" buffered records are flushed first, so they are included.
        """
        by_number = self._partitions.get(topic, {})
        if partition is not None:
            found = by_number.get(partition)
            return iter(()) if found is None else found.read(start_offset)
        return chain.from_iterable(p.read(start_offset) for p in list(by_number.values()))

    def topics(self) -> list[str]:
        """Names of the topics that have at least one partition, sorted."""
        return sorted(self._partitions)

    def partitions(self, topic: str) -> list[int]:
        """Partition numbers of `topic`, ascending; empty for an unknown topic."""
        return list(self._partitions.get(topic, {}))

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next record of the partition gets (0 if it does not exist)."""
        found = self._partitions.get(topic, {}).get(partition)
        return 0 if found is None else found.end_offset

    def offset_for_time(self, topic: str, partition: int, ts_event: int) -> int:
        """Offset of the first record with ts_event >= `ts_event`; end_offset if none."""
        found = self._partitions.get(topic, {}).get(partition)
        return 0 if found is None else found.offset_for_time(ts_event)

    def offset_for_wall_time(self, topic: str, partition: int, ts_wall: int) -> int:
        """Offset of the first record with ts_wall >= `ts_wall`; end_offset if none."""
        found = self._partitions.get(topic, {}).get(partition)
        return 0 if found is None else found.offset_for_wall_time(ts_wall)

    def digest(self, topic: str) -> str:
        """SHA-256 hex of the topic's keys and values, never its timestamps (see digest.py)."""
        return topic_digest((partition, partition_digest(self.read(topic, partition)))
                            for partition in self.partitions(topic))

    def digests(self) -> dict[str, str]:
        """digest() of every topic, by topic name (sorted)."""
        return {topic: self.digest(topic) for topic in self.topics()}

    def flush(self) -> None:
        """Write every partition's buffered records to its file."""
        for by_number in self._partitions.values():
            for partition in by_number.values():
                partition.flush()

    def sync(self) -> None:
        """Flush and fsync every partition."""
        for by_number in self._partitions.values():
            for partition in by_number.values():
                partition.sync()

    def close(self) -> None:
        """Flush, fsync and close every partition, then release the directory. Idempotent."""
        try:
            for by_number in self._partitions.values():
                for partition in by_number.values():
                    partition.close()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventLog({str(self.path)!r}, mode={self.mode!r})"


def _is_topic_name(name: str) -> bool:
    return name not in (".", "..") and _TOPIC_NAME.fullmatch(name) is not None


def _lock_directory(path: Path):
    """Hold an exclusive lock on the directory's lock file; raise if another writer has it."""
    lock = open(path / ".lock", "a+b")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise LogLockedError(f"{path} is already open for appending by another writer") from None
    return lock
