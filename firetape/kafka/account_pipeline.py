"""An account's stages (execution, portfolio, risk, allocator) run depth-first over its
sequenced inputs, by the embedded runtime's own bus.

The strategy already ran in the strategy agent; here a stand-in named "strategy" answers
each bar with the signals recorded in its evaluation. Because the stand-in sits where the
strategy stage sits in the registry's consumer order (the last consumer of md.bars), the
bus dispatches bar, then each signal, exactly as the embedded runtime does: same events,
same order, same ids.

The bus writes every event to a `log`; here the log is an outbox that keeps the events this
agent publishes (not its inputs) and, while state is being rebuilt, none at all. It also
refuses a second PlaceOrder or FillExecuted with an id it has seen: the stages are
deterministic so this never fires, but a redelivery must not become a second order or fill
whatever else goes wrong.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agents.stage import NOTHING
from firetape.config import FiretapeConfig
from firetape.kafka.wire import Sequenced, event_type
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.pipeline import build_stages
from schemas.header import Event
from schemas.market import Bar

INPUT_TOPICS = frozenset({"md.bars", "signals", "control"})
_DEDUP_FIELD = {"orders": b'"client_order_id":"', "fills": b'"fill_id":"'}


class RecordedStrategy:
    """Stands in for the strategy stage: returns the signals recorded for the bar."""

    name = "strategy"

    def __init__(self) -> None:
        self.pending: Sequence[Event] = NOTHING

    def routes(self) -> Mapping[type, object]:
        return {Bar: self.on_bar}

    def on_bar(self, bar: Bar) -> Sequence[Event]:
        events, self.pending = self.pending, NOTHING
        return events

    def finish(self, last_event: Event | None) -> Sequence[Event]:
        return NOTHING


@dataclass(frozen=True)
class OutRecord:
    topic: str
    partition: int
    key: bytes
    value: bytes
    type_name: str


class Outbox:
    """The bus's log: collects the records to publish, drops duplicates of orders/fills."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []
        self.suppress = False
        self.duplicates = 0
        self._seen: set[tuple[str, bytes]] = set()

    def partition_log(self, topic: str, partition: int) -> _OutboxPartition:
        """The bus's handle for one topic-partition (the event log's interface)."""
        return _OutboxPartition(self, topic, partition)

    def append(self, topic, partition, key, value, ts_event, wall_ns) -> int:
        marker = _DEDUP_FIELD.get(topic)
        if marker is not None:
            start = value.index(marker) + len(marker)
            ident = (topic, value[start:value.index(b'"', start)])
            if ident in self._seen:
                self.duplicates += 1
                return -1
            self._seen.add(ident)
        if not self.suppress and topic not in INPUT_TOPICS:
            self.records.append(OutRecord(topic, partition, key, bytes(value),
                                          event_type(value)))
        return -1

    def take(self) -> list[OutRecord]:
        records, self.records = self.records, []
        return records

    def flush(self) -> None:
        """Nothing to flush: the account agent publishes what `take` returns."""


class _OutboxPartition:
    """What EmbeddedBus appends to, per topic-partition: forwards to the Outbox."""

    __slots__ = ("outbox", "topic", "partition")

    def __init__(self, outbox: Outbox, topic: str, partition: int) -> None:
        self.outbox, self.topic, self.partition = outbox, topic, partition

    def append(self, key: bytes, value: bytes, ts_event: int, ts_wall: int) -> int:
        return self.outbox.append(self.topic, self.partition, key, value, ts_event, ts_wall)


class AccountPipeline:
    """The account stages, built on the first input (whose run id they adopt unless one
    is configured), fed one Sequenced input at a time."""

    def __init__(self, config: FiretapeConfig, run_id: str = "") -> None:
        self._config = config
        self._run_id = run_id
        self.outbox = Outbox()
        self._strategy = RecordedStrategy()
        self._bus: EmbeddedBus | None = None

    def _bus_for(self, event: Event) -> EmbeddedBus:
        if self._bus is None:
            run_id = self._run_id or event.run_id
            stages = [self._strategy if s.name == "strategy" else s
                      for s in build_stages(self._config, run_id)]
            self._bus = EmbeddedBus(stages, self.outbox, run_id)
        return self._bus

    def apply(self, item: Sequenced) -> list[OutRecord]:
        """Run one input through the stages; the records to publish (none when
        suppressed)."""
        if item.evaluation is not None:
            bar = item.evaluation.bar
            self._strategy.pending = item.evaluation.events
            self._bus_for(bar).publish(bar)
        elif item.control is not None:
            self._bus_for(item.control).publish(item.control)
        return self.outbox.take()

    @property
    def dead_letters(self) -> int:
        return self._bus.dead_letters if self._bus else 0
