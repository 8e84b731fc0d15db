"""The embedded runtime: an in-process bus over the registry's topics.

Every event is appended to the durable event log (topic, partition by the registry's key,
as Kafka would) and then handed to the stages that consume its type, in the registry's
consumer order. Processing is depth-first from each input event until nothing is left to
do, and only then is the next input taken: the order is a function of the inputs alone,
which is what makes a run replayable byte for byte.

A stage that raises does not stop the stream: its input goes to the dead-letter topic with
the reason and the original bytes, and processing goes on.
"""
from __future__ import annotations

from time import time_ns
from collections.abc import Callable, Sequence

from agents.context import Context
from agents.stage import Handler
from schemas import DeadLettered
from schemas.header import Event
from topics.codec import codec
from topics.partitioner import partition_for
from topics.registry import REGISTRY, topic_of


class _TopicWriter:
    """Encodes one topic's events and appends them to the log."""

    __slots__ = ("topic", "encode", "encode_into", "key_field", "partitions", "log", "count",
                 "routes")

    def __init__(self, topic: str, log) -> None:
        topic_codec = codec(topic)
        self.topic = topic
        self.encode = topic_codec.encode
        self.encode_into = topic_codec.encode_into
        self.key_field = topic_codec.key_field
        self.partitions = next(t.partitions for t in REGISTRY if t.name == topic)
        self.log = log
        self.count = 0
        # key -> (key bytes, partition, the partition's append or None, whether that
        # append copies the value at once): one dict lookup per event instead of encoding
        # the key, hashing it and finding the partition file every time
        self.routes: dict[str, tuple[bytes, int, Callable | None, bool]] = {}

    def route(self, key: str) -> tuple[bytes, int, Callable | None, bool]:
        """The route of `key`, made on its first event."""
        key_bytes = key.encode()
        partition = partition_for(key_bytes, self.partitions)
        append, copies = None, False
        if self.log is not None:
            handle = self.log.partition_log(self.topic, partition)
            # The event log's partitions copy a value at once, so they can be handed the
            # bus's reused encoding buffer; any other log gets bytes of its own.
            append, copies = handle.append, getattr(handle, "copies_values", False)
        route = self.routes[key] = (key_bytes, partition, append, copies)
        return route

    def write(self, event: Event) -> int:
        """Append `event`; return its offset, -1 when not logging."""
        key = getattr(event, self.key_field)
        key_bytes, _, append, _ = self.routes.get(key) or self.route(key)
        self.count += 1
        if append is None:
            return -1
        return append(key_bytes, self.encode(event), event.ts_event, time_ns())

    def partition_of(self, event: Event) -> int:
        """The partition `event` was (or would be) written to."""
        key = getattr(event, self.key_field)
        return (self.routes.get(key) or self.route(key))[1]


class EmbeddedBus:
    """Routes events between stages and records every one of them in the log."""

    def __init__(self, stages: Sequence, log=None, run_id: str = "") -> None:
        self.stages = list(stages)
        self.log = log
        self.ctx = Context(run_id, "runtime")
        self.dead_letters = 0
        self._writers: dict[type, _TopicWriter] = {}
        self._by_topic: dict[str, _TopicWriter] = {}
        # event type -> (its topic's writer, the writer's key field, its key routes, its
        # encode and encode_into, and the consumers' (stage name, handler) in the registry's
        # consumer order): one dict lookup per event routes it completely.
        self._routes: dict[type, tuple] = {}
        # Events for the event log are encoded into this one buffer, which the log's
        # append copies at once. msgspec's encode() grows a new bytes object from a few
        # dozen bytes for each event instead (several reallocations for a risk decision);
        # the buffer keeps its memory between events. Depth-first processing never nests
        # two uses of it (append calls no stage).
        self._scratch = bytearray()
        self._wire(stages)
        self.last_event: Event | None = None

    def _wire(self, stages) -> None:
        for topic_spec in REGISTRY:
            writer = _TopicWriter(topic_spec.name, self.log)
            self._by_topic[topic_spec.name] = writer
            order = {name: i for i, name in enumerate(topic_spec.consumers)}
            for value_type in topic_spec.values:
                self._writers[value_type] = writer
                handlers = []
                for stage in stages:
                    handler = stage.routes().get(value_type)
                    if handler is not None:
                        if stage.name not in order:
                            raise ValueError(f"stage {stage.name!r} consumes {value_type.__name__}"
                                             f" but is not a registered consumer of "
                                             f"{topic_spec.name!r}")
                        handlers.append((order[stage.name], stage.name, handler))
                handlers.sort(key=lambda h: h[0])
                self._routes[value_type] = (
                    writer, writer.key_field, writer.routes, writer.encode, writer.encode_into,
                    tuple((name, handler) for _, name, handler in handlers))

    def counts(self) -> dict[str, int]:
        """Events written per topic so far."""
        return {topic: w.count for topic, w in self._by_topic.items() if w.count}

    def publish(self, event: Event) -> None:
        """Take one input event and process everything it causes, depth first."""
        self.last_event = event
        self._process(event)

    def _process(self, event: Event) -> None:
        # Depth first: each event a handler returns is written and fully processed before
        # the handler's next event and before the next consumer sees `event`. A runtime
        # that feeds a stage one input at a time and drains it (as a Kafka agent does)
        # therefore sees exactly this order.
        writer, key_field, routes, encode, encode_into, handlers = self._routes[type(event)]
        # writer.write(event), inlined: this runs once per event of the run
        key = getattr(event, key_field)
        key_bytes, _, append, copies = routes.get(key) or writer.route(key)
        writer.count += 1
        if append is None:
            offset = -1
        elif copies:
            scratch = self._scratch
            encode_into(event, scratch)
            offset = append(key_bytes, scratch, event.ts_event, time_ns())
        else:
            offset = append(key_bytes, encode(event), event.ts_event, time_ns())
        for stage_name, handler in handlers:
            try:
                produced = handler(event)
            except Exception as exc:  # a failing stage must not stop the stream
                produced = (self._dead_letter(event, writer, offset, stage_name, exc),)
            for out in produced:
                self._process(out)

    def finish(self) -> None:
        """End of a finite stream: let each stage emit its closing events."""
        last_input = self.last_event
        for stage in self.stages:
            for out in stage.finish(last_input):
                self.publish(out)
        if self.log is not None:
            self.log.flush()

    def dead_letter_raw(self, topic: str, partition: int, offset: int, payload: bytes,
                        reason: str, ts: int) -> None:
        """Record an undecodable or invalid input record and go on."""
        self.dead_letters += 1
        header = {
            "event_id": self.ctx.derive_id("dlq", topic, partition, offset),
            "ts_event": ts, "ts_init": ts, "correlation_id": "", "causation_id": "",
            "producer": "runtime", "run_id": self.ctx.run_id,
        }
        event = DeadLettered(**header, source_topic=topic, source_partition=partition,
                             source_offset=offset, stage="runtime", reason=reason,
                             payload=payload)
        self._writers[DeadLettered].write(event)

    def _dead_letter(self, event: Event, writer: _TopicWriter, offset: int, stage: str,
                     exc: Exception) -> DeadLettered:
        self.dead_letters += 1
        topic = topic_of(type(event))
        header = self.ctx.header(event)
        header["event_id"] = self.ctx.derive_id("dlq", stage, event.event_id)
        return DeadLettered(
            **header,
            source_topic=topic, source_partition=writer.partition_of(event),
            source_offset=offset,
            stage=stage, reason=f"stage {stage} raised {type(exc).__name__}: {exc}",
            payload=codec(topic).encode(event))
