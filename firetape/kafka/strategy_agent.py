"""The strategy agent: md.bars -> strategy.evaluated (+ signals, + dlq), in batches.

A consumer group over md.bars, so `docker compose up --scale strategy=3` splits the
partitions (by symbol) between workers and a dead worker's partitions move to the others.
Each fetch is evaluated record by record (`strategy_binding`, the same pure stage as the
embedded runtime) and every output goes to the partition its bar came from, so the order
per partition holds.

Delivery is at-least-once with deterministic outputs: the input offsets are committed only
after the producer has every output of those records acknowledged (flush, then commit,
every `commit_interval_s` and before partitions move away). A record read again after a
crash makes the same evaluation with the same ids, which the account's merge drops by bar
and the audit by event id. The strategy makes no orders or fills; the account agent, which
does, is exactly-once by its own transactions.

State: rebuilt from md.bars whenever a record does not follow the last one applied (the
first record after a start or a rebalance), starting from the partition's latest usable
snapshot on `strategy.snapshots` (one every `snapshot_every` records) rather than offset 0.

Operator commands (StrategyDisabled / StrategyEnabled): every worker reads all of
`control` (no group: each needs every command) and applies a command to each partition it
owns just before that partition's next record, after recording the point on
`strategy.control` (see strategy_control.py): it first proves it still owns the partition
by committing its offset (a member fenced by a rebalance cannot commit), then waits for the
marker's acknowledgement, so no evaluation made with the command exists without its marker.
A rebuild reads the markers and applies each command at its recorded point. Batches are
evaluated under a lock that the revoke callback also takes, so a partition never moves while
its records are being evaluated.

Why not a faust stream: faust's per-event machinery cost about 400 µs of CPU per bar here
(bench/bench_kafka.py, agents alone on a backlog), several times the strategy itself, and
its exactly_once mode crashes without a table. The agent runs inside the faust worker (see
app.py) for its lifecycle, logging and health endpoint, like the account and audit agents.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError

from firetape.config import FiretapeConfig
from firetape.kafka import clients
from firetape.kafka.readback import read_range, read_topic
from firetape.kafka.settings import AgentSettings
from firetape.kafka.strategy_binding import StrategyEvaluator
from firetape.kafka.strategy_control import CommandApplied, marker_codec
from firetape.kafka.topology import EVALUATED, SNAPSHOTS, STRATEGY_CONTROL, Topology
from firetape.kafka.wire import headers
from topics.codec import codec

log = logging.getLogger(__name__)
MAX_RECORDS = 2000


@dataclass
class StrategyStats:
    records: int = 0
    signals: int = 0
    dead_letters: int = 0
    commits: int = 0
    snapshots: int = 0
    commands: int = 0          # strategy commands read from control
    markers: int = 0           # command points recorded on strategy.control


class StrategyAgent:
    """Runs until `stop()`; `ready` is set once it has joined the group."""

    def __init__(self, settings: AgentSettings, config: FiretapeConfig) -> None:
        self.settings = settings
        self.topology = Topology(settings.prefix)
        name = self.topology.name
        self.bars_topic, self.evaluated_topic = name("md.bars"), name(EVALUATED)
        self.signals_topic, self.dlq_topic = name("signals"), name("dlq")
        self.snapshots_topic = name(SNAPSHOTS)
        self.control_topic, self.markers_topic = name("control"), name(STRATEGY_CONTROL)
        self._snapshot_every = settings.snapshot_every
        self.evaluator = StrategyEvaluator(config, self.bars_topic, settings.run_id)
        # The strategy workers of one namespace share this group and split md.bars between
        # them (not the faust worker's own group, which speaks faust's assignor).
        self.group_id = f"{settings.app_id}-strategy-agents"
        self.stats = StrategyStats()
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer = None
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}   # next offset to commit, not yet committed
        self._sent: list[asyncio.Future] = []
        self._encode_signal, self._encode_dlq = codec("signals").encode, codec("dlq").encode
        self._commands: list[tuple[int, object]] = []   # (control offset, command) as read
        self._markers_read = 0        # strategy.control is known to the evaluator up to here
        # Held while a batch is evaluated and by the revoke callback: partitions move only
        # between batches, never while a marker or an evaluation of theirs is being made.
        self._lock = asyncio.Lock()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        settings = self.settings
        await clients.ensure_topics(settings)
        self._producer = producer = clients.producer(settings)
        await producer.start()
        try:
            self._consumer = consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.bootstrap, group_id=self.group_id,
                enable_auto_commit=False, auto_offset_reset="earliest",
                isolation_level="read_committed",
                fetch_max_wait_ms=max(1, settings.fetch_wait_ms),
                session_timeout_ms=int(settings.session_timeout_s * 1000),
                heartbeat_interval_ms=int(min(3.0, settings.session_timeout_s / 3) * 1000),
                max_partition_fetch_bytes=4 * 1024 * 1024)
            control = clients.consumer(settings)
            await consumer.start()
            await control.start()
            try:
                control_tp = TopicPartition(self.control_topic, 0)
                control.assign([control_tp])
                control.seek(control_tp, 0)
                consumer.subscribe([self.bars_topic], listener=_CommitOnRevoke(self))
                self.ready.set()
                await self._consume(consumer, control)
                await self.commit()                  # a clean stop leaves nothing behind
            finally:
                await control.stop()
                await consumer.stop()
        finally:
            await producer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer, control: AIOKafkaConsumer) -> None:
        wait_ms = max(1, self.settings.fetch_wait_ms)
        interval = self.settings.commit_interval_s
        last_commit = time.monotonic()
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=MAX_RECORDS)
            # Commands read now take effect before the next record of each partition.
            self._take_commands(await control.getmany(timeout_ms=0))
            async with self._lock:
                for tp, records in batch.items():
                    for record in records:
                        if not await self._evaluate(tp, record):
                            break             # no longer ours: its next owner goes on
                        self._pending[tp] = record.offset + 1
                if self._pending and time.monotonic() - last_commit >= interval:
                    await self.commit()
                    last_commit = time.monotonic()

    def _take_commands(self, batch) -> None:
        decode = codec("control").decode
        for records in batch.values():
            for record in records:
                try:
                    command = decode(record.value)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.error("strategy: skipped undecodable control record @%d: %s",
                              record.offset, exc)
                    continue
                if isinstance(command, self.evaluator.command_types):
                    self._commands.append((record.offset, command))
                    self.stats.commands += 1

    async def _evaluate(self, tp: TopicPartition, record) -> bool:
        """Evaluate one md.bars record; False if the partition turned out not to be this
        worker's any more (nothing was evaluated, the record is fetched again if it is)."""
        evaluator, offset, partition = self.evaluator, record.offset, tp.partition
        if not evaluator.has_state(partition) or evaluator.needs_rebuild(partition, offset):
            await self._rebuild(partition, offset)
        if self._commands:
            due = evaluator.due_commands(partition, self._commands)
            if due:
                if not await self._mark(tp, offset, due):
                    return False
                if not evaluator.has_state(partition):   # another worker's marker stands
                    await self._rebuild(partition, offset)
        outcome = evaluator.apply(record.value, partition, offset)
        send, sent = self._producer.send, self._sent
        for signal in outcome.signals:
            sent.append(await send(self.signals_topic, self._encode_signal(signal),
                                   key=signal.symbol.encode(), partition=partition,
                                   headers=headers(type(signal).__name__, signal.event_id)))
        self.stats.signals += len(outcome.signals)
        if outcome.dead_letter is not None:
            dead = outcome.dead_letter
            log.warning("strategy: %s@%d to the dead-letter topic: %s", self.bars_topic,
                        offset, dead.reason)
            sent.append(await send(self.dlq_topic, self._encode_dlq(dead),
                                   key=dead.source_topic.encode(), partition=0,
                                   headers=headers("DeadLettered", dead.event_id)))
            self.stats.dead_letters += 1
        sent.append(await send(self.evaluated_topic, outcome.evaluation,
                               key=record.key or b"", partition=partition,
                               headers=headers("Evaluation", f"{partition}:{offset}")))
        self.stats.records += 1
        if self._snapshot_every and (offset + 1) % self._snapshot_every == 0:
            await self._snapshot(partition, offset + 1)
        return True

    async def _mark(self, tp: TopicPartition, offset: int, due: list) -> bool:
        """Record that the `due` commands take effect on `tp` before `offset`; False
        (nothing recorded) if this worker no longer owns `tp`."""
        if not await self._still_owner(tp, offset):
            return False
        encode, partition = marker_codec[0], tp.partition
        sent = []
        for control_offset, command in due:
            marker = CommandApplied(source_partition=partition, source_offset=offset,
                                    control_offset=control_offset, command=command)
            sent.append((marker, await self._producer.send(
                self.markers_topic, encode(marker), key=str(partition).encode(), partition=0,
                headers=headers(type(command).__name__,
                                f"{partition}:{offset}:{control_offset}"))))
        # Acknowledged before the record is evaluated: an evaluation made with a command
        # must never exist without the marker that lets a rebuild make it again.
        landed = [(marker, await future) for marker, future in sent]
        # Read strategy.control back up to ours: a marker for the same command and
        # partition before ours (a worker that had the partition without knowing it had
        # lost it) stands instead of ours, for every reader.
        # (The evaluator then drops the partition's state, and the caller rebuilds it.)
        await self._read_markers(landed[-1][1].offset + 1)
        self.stats.markers += len(landed)
        log.warning("strategy: %s take effect on %s[%d] before offset %d",
                    ", ".join(f"{type(c).__name__}({getattr(c, 'strategy', '')})@{o}"
                              for o, c in due), self.bars_topic, partition, offset)
        return True

    async def _still_owner(self, tp: TopicPartition, offset: int) -> bool:
        """Commit `tp` up to `offset` (outputs flushed first): only a current member of
        the group that owns `tp` can, so a success proves the marker is ours to write."""
        if tp not in self._consumer.assignment():
            return False
        await self._flush()
        try:
            await self._consumer.commit({tp: offset})
        except CommitFailedError as exc:
            log.warning("strategy: %s moved to another worker (%s)", tp, exc)
            # Fetched again from here if it is still (or again) ours after the rebalance.
            self._consumer.seek(tp, offset)
            return False
        self._pending.pop(tp, None)
        self.stats.commits += 1
        return True

    async def _read_markers(self, until: int | None = None) -> None:
        """Hand the evaluator the strategy.control records it has not seen, up to offset
        `until` (exclusive; None: the end)."""
        end = until if until is not None else 2**63 - 1
        if end <= self._markers_read:
            return
        decode = marker_codec[1]
        records = await read_range(self.settings.bootstrap, self.markers_topic, 0,
                                   self._markers_read, end)
        for record in records:
            try:
                self.evaluator.add_marker(decode(record.value))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("strategy: skipped undecodable %s@%d: %s", self.markers_topic,
                          record.offset, exc)
        if records:
            self._markers_read = records[-1].offset + 1

    async def _rebuild(self, partition: int, offset: int) -> None:
        """The state of `partition` up to `offset`: its latest snapshot at or before it,
        then the md.bars records after the snapshot, with every command applied where its
        marker says."""
        await self._read_markers()
        start = 0
        key = str(partition).encode()
        snapshots = (await read_topic(self.settings.bootstrap, self.snapshots_topic)
                     if offset else [])
        for snapshot in reversed(snapshots):
            covered = int(dict(snapshot.headers).get("offset", b"-1"))
            if snapshot.key == key and 0 < covered <= offset:
                start = self.evaluator.restore(partition, snapshot.value) or 0
                if start:
                    break
        records = await read_range(self.settings.bootstrap, self.bars_topic, partition,
                                   start, offset)
        self.evaluator.rebuild(partition, [(r.offset, r.value) for r in records], offset,
                               start)
        if offset == 0:
            return                        # first sight of the partition: nothing to say
        log.warning("strategy: rebuilt %s[%d] up to offset %d from %s and %d records",
                    self.bars_topic, partition, offset,
                    f"the snapshot at {start}" if start else "the start", len(records))

    async def _snapshot(self, partition: int, covered: int) -> None:
        try:
            blob = self.evaluator.snapshot(partition)
        except Exception as exc:     # noqa: BLE001 - e.g. a plugin that cannot be pickled
            log.warning("strategy: no snapshots (state cannot be saved: %s); a restart "
                        "rebuilds from the start of md.bars", exc)
            self._snapshot_every = 0
            return
        # Not acknowledged before going on: a snapshot that never lands only makes the
        # next rebuild start further back.
        await self._producer.send(self.snapshots_topic, blob, key=str(partition).encode(),
                                  partition=0, headers=[("offset", str(covered).encode())])
        self.stats.snapshots += 1

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit the input offsets whose outputs are all acknowledged (every output sent
        so far: the producer is flushed first and a failed send raises here, before any
        offset is committed, so the records are read again by whoever owns them next)."""
        if not self._pending:
            return
        await self._flush()
        # Only partitions this worker still owns: an offset committed for a partition
        # that moved could rewind its new owner's.
        owned = self._consumer.assignment()
        offsets = {tp: n for tp, n in self._pending.items()
                   if tp in owned and (only is None or tp in only)}
        self._pending = {tp: n for tp, n in self._pending.items()
                         if tp in owned and tp not in offsets}
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except CommitFailedError as exc:
                # A rebalance took the partitions meanwhile: their next owner reads these
                # records again and makes the same outputs, which are dropped downstream.
                log.warning("strategy: offsets not committed (%s); they will be read again",
                            exc)
                return
            self.stats.commits += 1


    async def _flush(self) -> None:
        """Wait until every output sent so far is acknowledged (a failed send raises)."""
        await self._producer.flush()
        sent, self._sent = self._sent, []
        for future in sent:
            future.result()


class _CommitOnRevoke(ConsumerRebalanceListener):
    """Before partitions move to another strategy worker, commit what was evaluated from
    them, so the next owner starts right after it (and rebuilds the state up to there)."""

    def __init__(self, agent: StrategyAgent) -> None:
        self.agent = agent

    async def on_partitions_revoked(self, revoked) -> None:
        async with self.agent._lock:      # after the batch being evaluated, not during it
            await self.agent.commit(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        return None
