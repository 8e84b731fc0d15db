"""The durable local event log of the embedded runtime.

One append-only, CRC-checked file per topic-partition (layout in `layout`), recovered on
open by cutting a torn tail, read back by offset or time, digested by content for
deterministic-replay checks, and merged across partitions in the documented replay order.
"""
from firetape.eventlog.errors import (CorruptLogError, EventLogError, LogLockedError,
                                      ReadOnlyLogError)
from firetape.eventlog.layout import Record
from firetape.eventlog.log import EventLog
from firetape.eventlog.partition import Recovery
from firetape.eventlog.replay import merge_partitions

__all__ = ["CorruptLogError", "EventLog", "EventLogError", "LogLockedError", "ReadOnlyLogError",
           "Record", "Recovery", "merge_partitions"]
