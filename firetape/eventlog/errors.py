"""Errors the event log raises; each names the file or topic it is about."""
from __future__ import annotations


class EventLogError(Exception):
    """Base of every event-log error."""


class CorruptLogError(EventLogError):
    """A file is not a readable firetape log (wrong magic or version): nothing is cut."""


class ReadOnlyLogError(EventLogError):
    """An append on a log opened with mode="r"."""


class LogLockedError(EventLogError):
    """Another writer already holds the log directory."""
