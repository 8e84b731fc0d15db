"""The account agent: one per account, running risk, execution, portfolio and the allocator
over one ordered stream, with exactly-once output through Kafka transactions.

Loop: read strategy.evaluated (every partition), md.watermarks and control; merge them
(`sequencer.Merger`; an operator command is taken as soon as it is read, between released
bars); then, in ONE transaction, write each input to account.sequence followed by the
events it caused on the registry topics. Either the input and all its consequences are
committed, or none of them.

Recovery is event-sourced: on start the transactional producer fences the previous
incarnation (its open transaction is aborted), then account.sequence is read back
(read_committed) and every input is run through the stages again with output suppressed:
the handlers are deterministic, so this recreates the exact state, including the ids of
orders and fills already sent. Reading resumes right after the last sequenced input. No
consumer offsets are committed anywhere: the sequence is the position.

Why not a faust agent with a faust table: the merge holds records of several partitions
until a watermark releases them, and faust commits each partition's offset (and its
changelog, under exactly_once its transaction) on its own, so a crash could lose buffered
records or commit state without its outputs. One producer transaction per released batch
has neither problem. The agent still runs inside the faust worker (see app.py) for its
lifecycle, logging and health endpoint.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import msgspec
from aiokafka import TopicPartition

from firetape.config import FiretapeConfig
from firetape.kafka import clients
from firetape.kafka.account_pipeline import AccountPipeline
from firetape.kafka.sequencer import Merger
from firetape.kafka.settings import AgentSettings
from firetape.kafka.topology import EVALUATED, SEQUENCE, WATERMARKS, Topology
from firetape.kafka.wire import (Sequenced, evaluation_codec, headers, sequenced_codec,
                                 watermark_codec)
from topics.codec import codec
from topics.partitioner import partition_for

log = logging.getLogger(__name__)
MAX_RECORDS = 2000


@dataclass
class AccountStats:
    sequenced: int = 0
    published: int = 0
    rebuilt: int = 0
    bad_records: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class AccountAgent:
    """Runs until `stop()`; `ready` is set once state is rebuilt and reading has begun."""

    def __init__(self, settings: AgentSettings, config: FiretapeConfig) -> None:
        self.settings = settings
        self.account = config.run.account
        self.topology = Topology(settings.prefix)
        self.pipeline = AccountPipeline(config, settings.run_id)
        self.merger = Merger()
        self.stats = AccountStats()
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._control_position = 0
        name = self.topology.name
        self._evaluated = [TopicPartition(name(EVALUATED), p)
                           for p in range(self.topology.partitions(EVALUATED))]
        self._marks = TopicPartition(name(WATERMARKS), 0)
        self._control = TopicPartition(name("control"), 0)
        key = self.account.encode()
        self._key = key
        self._sequence = TopicPartition(
            name(SEQUENCE), partition_for(key, self.topology.partitions(SEQUENCE)))
        self.transactional_id = f"{settings.app_id}-account-{self.account}"

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await clients.ensure_topics(self.settings)
        producer = clients.producer(self.settings, self.transactional_id)
        await producer.start()          # fences the previous incarnation first
        try:
            await self._rebuild()
            consumer = clients.consumer(self.settings)
            await consumer.start()
            try:
                await self._consume(consumer, producer)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    # -- recovery ------------------------------------------------------------------------

    async def _rebuild(self) -> None:
        reader = clients.consumer(self.settings)
        await reader.start()
        try:
            reader.assign([self._sequence])
            await reader.seek_to_beginning(self._sequence)
            end = (await reader.end_offsets([self._sequence]))[self._sequence]
            decode = sequenced_codec[1]
            self.pipeline.outbox.suppress = True
            while await reader.position(self._sequence) < end:
                batch = await reader.getmany(self._sequence, timeout_ms=500)
                for record in batch.get(self._sequence, ()):
                    if record.key != self._key:
                        continue
                    item = decode(record.value)
                    self.pipeline.apply(item)
                    self.merger.restore(item)
                    if item.control is not None:
                        self._control_position = item.source_offset + 1
                    self.stats.rebuilt += 1
        finally:
            self.pipeline.outbox.suppress = False
            await reader.stop()
        if self.stats.rebuilt:
            log.warning("account %s: rebuilt state from %d sequenced inputs",
                        self.account, self.stats.rebuilt)

    # -- the loop ------------------------------------------------------------------------

    async def _consume(self, consumer, producer) -> None:
        consumer.assign(self._evaluated + [self._marks, self._control])
        for tp in self._evaluated:
            consumer.seek(tp, self.merger.positions.get(tp.partition, 0))
        consumer.seek(self._marks, self.merger.watermark_position)
        consumer.seek(self._control, self._control_position)
        self.ready.set()
        decode_evaluation, decode_mark = evaluation_codec[1], watermark_codec[1]
        decode_control = codec("control").decode
        wait_ms = max(1, self.settings.fetch_wait_ms)
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=MAX_RECORDS)
            commands: list[Sequenced] = []
            for tp, records in batch.items():
                for record in records:
                    try:
                        if tp == self._marks:
                            self.merger.add_watermark(decode_mark(record.value), record.offset)
                        elif tp == self._control:
                            command = self._command(decode_control(record.value), record)
                            if command is not None:
                                commands.append(command)
                        else:
                            self.merger.add_evaluation(decode_evaluation(record.value),
                                                       tp.partition, record.offset)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        # Our own topics, written by our own code: only a foreign producer
                        # gets here. Counted and logged; the dead-letter topic is for
                        # market data and stage failures.
                        self.stats.bad_records += 1
                        log.error("account %s: skipped undecodable record %s@%d: %s",
                                  self.account, tp, record.offset, exc)
            items = commands + [self._sequenced(r) for r in self.merger.release()]
            if items:
                await self._commit(producer, items)

    def _command(self, event, record) -> Sequenced | None:
        self._control_position = record.offset + 1
        if getattr(event, "account", "") not in ("", self.account):
            return None
        return Sequenced(account=self.account, source_topic="control", source_partition=0,
                         source_offset=record.offset, input_offset=record.offset,
                         control=event)

    def _sequenced(self, released) -> Sequenced:
        evaluation = released.evaluation
        return Sequenced(account=self.account, source_topic="md.bars",
                         source_partition=evaluation.source_partition,
                         source_offset=evaluation.source_offset,
                         input_offset=released.input_offset,
                         watermark_offset=released.watermark_offset, evaluation=evaluation)

    async def _commit(self, producer, items: list[Sequenced]) -> None:
        encode = sequenced_codec[0]
        name = self.topology.name
        stats = self.stats
        async with producer.transaction():
            for item in items:
                ident = f"{item.source_topic}:{item.source_partition}:{item.source_offset}"
                await producer.send(self._sequence.topic, encode(item), key=self._key,
                                    partition=self._sequence.partition,
                                    headers=headers("Sequenced", ident))
                for out in self.pipeline.apply(item):
                    await producer.send(name(out.topic), out.value, key=out.key,
                                        partition=out.partition,
                                        headers=headers(out.type_name, _event_id(out.value)))
                    stats.by_type[out.type_name] = stats.by_type.get(out.type_name, 0) + 1
                    stats.published += 1
                stats.sequenced += 1


def _event_id(value: bytes) -> str:
    start = value.find(b'"event_id":"')
    if start < 0:
        return ""
    start += len(b'"event_id":"')
    return value[start:value.index(b'"', start)].decode()
