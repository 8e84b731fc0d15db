"""The inputs of a live run: how they are ordered when recorded and read back for replay.

Replay order rule for live runs: the live loop takes one input at a time from one queue,
and stamps each with a `ts_init` strictly greater than the previous input's (InputClock).
The queue order is therefore the `ts_init` order, and a replay reads every input topic
(topics.registry.INPUT_TOPICS: bars, control, broker reports), decodes each record and
publishes them sorted by `ts_init`. (File backtests keep their own rule, by `ts_event`,
in firetape.runtime.replay.)
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import msgspec

from firetape.eventlog import EventLog
from schemas.header import Event
from topics.codec import codec
from topics.registry import INPUT_TOPICS

LIVE_MODE = "live"


class InputClock:
    """Wall-clock nanoseconds, made strictly increasing: the stamp of each live input."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._last = 0

    def stamp(self, received_ns: int | None = None) -> int:
        """A stamp for an input received at `received_ns` (default: now), after the last."""
        now = self._clock() if received_ns is None else received_ns
        self._last = max(now, self._last + 1)
        return self._last


class Undecodable(msgspec.Struct, frozen=True):
    """An input record that could not be decoded: the bus dead-letters it."""

    topic: str
    partition: int
    offset: int
    payload: bytes
    reason: str
    ts: int


def recorded_inputs(log: EventLog) -> Iterator[Event | Undecodable]:
    """Every input event of a live run's log, in the order the live loop took them.

    Undecodable records come first, in log order: they never reached a stage, so where
    they go does not change any other output.
    """
    stamped: list[tuple[int, int, int, int, Event]] = []
    for rank, topic in enumerate(INPUT_TOPICS):
        if topic not in log.topics():
            continue
        decode = codec(topic).decode
        for record in log.read(topic):
            try:
                event = decode(record.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                yield Undecodable(topic, record.partition, record.offset, bytes(record.value),
                                  f"undecodable: {exc}", record.ts_event)
                continue
            stamped.append((event.ts_init, rank, record.partition, record.offset, event))
    stamped.sort(key=lambda item: item[:4])
    for *_, event in stamped:
        yield event


def replay_live_inputs(config, run_id: str, original: EventLog, replayed: EventLog):
    """Feed a live run's recorded inputs through fresh stages into `replayed`.

    The execution stage is Alpaca's with no outbox consumer: the broker's answers are
    among the inputs, so nothing is sent anywhere. Returns the bus and the bars fed.
    """
    from agents.context import Context
    from connectors.alpaca.execution import AlpacaExecution
    from firetape.runtime.bus import EmbeddedBus
    from firetape.runtime.pipeline import build_stages
    from schemas.market import Bar

    execution = AlpacaExecution(Context(run_id, "execution", config.run.account), config.alpaca)
    bus = EmbeddedBus(build_stages(config, run_id, execution), replayed, run_id)
    bars = 0
    for item in recorded_inputs(original):
        if isinstance(item, Undecodable):
            bus.dead_letter_raw(item.topic, item.partition, item.offset, item.payload,
                                item.reason, item.ts)
            continue
        bus.publish(item)
        bars += isinstance(item, Bar)
    return bus, bars
