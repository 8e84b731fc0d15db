"""The shape every pipeline stage has, whichever runtime moves its events."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from schemas.header import Event

Handler = Callable[[Event], Sequence[Event]]
NOTHING: tuple[Event, ...] = ()


class Stage(Protocol):
    """A pure stage: for each input event type, a handler returning the events it causes.

    Handlers never do I/O, never read the wall clock and never raise for bad business
    input (they answer with an event instead, e.g. OrderDenied, StrategyFailed). The
    runtime routes each returned event to the topic its type belongs to (topics.registry).
    """

    name: str

    def routes(self) -> Mapping[type, Handler]:
        """Input event type -> handler."""

    def finish(self, last_event: Event | None) -> Sequence[Event]:
        """Called once at the end of a finite stream (end of a backtest)."""
