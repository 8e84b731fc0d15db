"""The strategy stage as a function of md.bars records, one partition at a time.

No faust here (the faust agent in `agents.py` only moves bytes), so this is what the unit
tests drive. A StrategyStage keeps everything per symbol, so one stage per symbol (kept
per md.bars partition) makes the same events with the same ids as the embedded runtime's
single stage.

State is event-sourced from md.bars itself: a partition's stage is exactly the fold of
that partition's records before the one being evaluated. The evaluator knows the offset
it expects next per partition; a record at any other offset (the first one after a
(re)start or a rebalance, or a redelivery) needs the partition rebuilt first:
`needs_rebuild` says so, the agent reads md.bars[partition] from the beginning up to that
offset and hands the values to `rebuild`, which applies them with the outputs dropped.
The handlers are deterministic, so the rebuilt stage is the one that was lost, whatever
was committed or not. A `snapshot` (the partition's stages pickled, with the offset they
cover and a fingerprint of the code and strategy config that made them) lets a rebuild
start there instead of at offset 0; one that does not match is ignored. (faust's table
changelog is written by its buffered, non-transactional producer, so a table recovered
after SIGKILL could miss bars whose input offsets were committed; nothing here depends
on it.)

Operator commands for the strategy (StrategyDisabled / StrategyEnabled: whatever control
event the strategy stage routes) are part of that fold too: a partition's state is its
records before the offset plus the commands whose markers (`strategy_control`) say they
took effect before it, each applied just before the record its marker names. The agent
records a marker (`add_marker`) for each command `due_commands` lists before it evaluates
the next record; `apply` and `rebuild` then apply every marked command at its point. A
snapshot carries the commands applied so far, so a stage made later for a new symbol of
the partition starts with them too.
"""
from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from agents.context import Context
from agents.strategy import StrategyStage
from firetape.config import FiretapeConfig, strategy_setup
from firetape.kafka.strategy_control import CommandApplied, PartitionMarkers
from firetape.kafka.wire import Evaluation, evaluation_codec
from firetape.runtime.pipeline import build_stages
from schemas import DeadLettered
from topics.codec import codec
from topics.registry import spec

STAGE = "strategy"
# Bump when the snapshot's layout changes: part of the fingerprint, so an older snapshot is
# ignored rather than misread.
SNAPSHOT_FORMAT = 2


@dataclass
class Outcome:
    """What one md.bars record produced: its evaluation record, the signal events, and a
    dead letter for an undecodable record."""

    symbol: str | None
    evaluation: bytes
    signals: list
    dead_letter: DeadLettered | None


class _Partition:
    __slots__ = ("stages", "next_offset", "commands", "control_offset")

    def __init__(self) -> None:
        self.stages: dict[str, object] = {}    # symbol -> its stage (adopts the bar's run id)
        self.next_offset = 0
        self.commands: list = []               # strategy commands applied, in control order
        self.control_offset = -1               # control offset of the last one applied


class StrategyEvaluator:
    """Applies md.bars records to per-symbol strategy stages, tracked per partition."""

    def __init__(self, config: FiretapeConfig, topic: str = "md.bars", run_id: str = "") -> None:
        self._config = config
        self._topic = topic
        self._run_id = run_id
        self._decode = codec("md.bars").decode
        self._encode_evaluation = evaluation_codec[0]
        self._partitions: dict[int, _Partition] = {}
        self._markers: dict[int, PartitionMarkers] = {}
        self.rebuilds = 0
        self.fingerprint = _fingerprint(config)
        # The control events the strategy stage acts on (StrategyDisabled, StrategyEnabled),
        # asked of a stage without strategies, so this costs nothing and checks no config.
        routes = StrategyStage(Context(run_id, STAGE), ()).routes()
        self.command_types = tuple(t for t in spec("control").values if t in routes)

    def has_state(self, partition: int) -> bool:
        """Whether this evaluator has seen `partition` (a worker that has not must rebuild
        it, if only to learn its markers, before its first record)."""
        return partition in self._partitions

    def add_marker(self, marker: CommandApplied) -> bool:
        """Learn where a command took effect (markers in the order of strategy.control);
        False if a marker for that command and partition came first, which then stands.

        A marker that stands but names a point this partition's state has already passed
        without the command (written by a worker that had the partition too) drops the
        state: `has_state` is then false and the next record rebuilds it, applying the
        command where the marker says."""
        partition = marker.source_partition
        if not self._markers.setdefault(partition, PartitionMarkers()).add(marker):
            return False
        state = self._partitions.get(partition)
        if (state is not None and marker.source_offset < state.next_offset
                and marker.control_offset > state.control_offset):
            del self._partitions[partition]
        return True

    def marker(self, partition: int, control_offset: int) -> CommandApplied | None:
        """The marker that stands for the command at `control_offset` on `partition`."""
        for marker in self._markers.get(partition, PartitionMarkers()).markers:
            if marker.control_offset == control_offset:
                return marker
        return None

    def due_commands(self, partition: int, commands) -> list:
        """Of `commands` ((control offset, event) in control order, as read), those that
        have not taken effect on `partition` yet: after its last marker and the last one
        applied. The agent marks them before evaluating the partition's next record."""
        state = self._partitions.get(partition)
        last = state.control_offset if state is not None else -1
        if not commands or commands[-1][0] <= last:
            return []               # the usual case, once per record: nothing new
        markers = self._markers.get(partition)
        if markers is not None:
            last = max(last, markers.last_control_offset())
        return [(offset, event) for offset, event in commands
                if offset > last and isinstance(event, self.command_types)]

    def needs_rebuild(self, partition: int, offset: int) -> bool:
        """Whether the stage of `partition` is not the fold of exactly the records before
        `offset` (then call `rebuild` with md.bars[partition][0, offset) first)."""
        state = self._partitions.get(partition)
        if state is None:
            return offset > 0
        return state.next_offset != offset

    def snapshot(self, partition: int) -> bytes:
        """The state of `partition` as bytes for `restore` (pickle: a strategy plugin that
        cannot be pickled raises here, and the agent then takes no snapshots)."""
        state = self._partitions[partition]
        return pickle.dumps((self.fingerprint, state.next_offset, state.stages,
                             state.commands, state.control_offset),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, partition: int, blob: bytes) -> int | None:
        """Make `blob` (from `snapshot`) the state of `partition`; the offset it covers up
        to, or None (state unchanged) if it was made by other code or another strategy
        config, or cannot be read."""
        try:
            content = pickle.loads(blob)
            if content[0] != self.fingerprint:
                return None
            _, next_offset, stages, commands, control_offset = content
        except Exception:            # noqa: BLE001 - any unreadable snapshot is ignored
            return None
        self._partitions[partition] = state = _Partition()
        state.stages, state.next_offset = stages, next_offset
        state.commands, state.control_offset = commands, control_offset
        return next_offset

    def rebuild(self, partition: int, values: Iterable[bytes], until: int,
                start: int = 0) -> None:
        """Make the stage of `partition` the fold of its records up to `until`, exclusive:
        `values` are the records from offset `start` (bytes at consecutive offsets, or
        (offset, bytes) pairs), applied with outputs dropped on top of the state `restore`
        left (start > 0) or of a fresh one (start 0); each marked command is applied
        before the record its marker names."""
        state = self._partitions.get(partition)
        if start == 0 or state is None or state.next_offset != start:
            if start:
                raise ValueError(f"no state of partition {partition} at offset {start}")
            self._partitions[partition] = state = _Partition()
        for index, item in enumerate(values):
            offset, value = item if isinstance(item, tuple) else (start + index, item)
            self._apply_marked(partition, state, offset)
            try:
                bar = self._decode(value)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue            # a poison record changes no state
            list(self._stage(state, bar).on_bar(bar))
        state.next_offset = until
        self.rebuilds += 1

    def apply(self, value: bytes, partition: int, offset: int) -> Outcome:
        """Evaluate the record at (`partition`, `offset`); call only when
        `needs_rebuild` is false for it."""
        state = self._partitions.get(partition)
        if state is None:
            self._partitions[partition] = state = _Partition()
        if partition in self._markers:
            self._apply_marked(partition, state, offset)
        state.next_offset = offset + 1
        try:
            bar = self._decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._poison(value, partition, offset, f"undecodable: {exc}")
        events = list(self._stage(state, bar).on_bar(bar))
        evaluation = self._encode_evaluation(Evaluation(
            source_partition=partition, source_offset=offset, bar=bar, events=events))
        return Outcome(bar.symbol, evaluation, events, None)

    def _apply_marked(self, partition: int, state: _Partition, offset: int) -> None:
        """Apply the commands marked to take effect on `partition` before `offset`."""
        markers = self._markers.get(partition)
        if markers is None or markers.last_control_offset() <= state.control_offset:
            return                  # the usual case, once per record: nothing new
        for marker in markers.due(state.control_offset, offset):
            command = marker.command
            state.commands.append(command)
            state.control_offset = marker.control_offset
            for stage in state.stages.values():
                _command(stage, command)

    def _stage(self, state: _Partition, bar):
        stage = state.stages.get(bar.symbol)
        if stage is None:
            run_id = self._run_id or bar.run_id
            stage = next(s for s in build_stages(self._config, run_id) if s.name == STAGE)
            # A symbol first seen now gets the partition's commands so far: the same as
            # one stage for every symbol, as in the embedded runtime.
            for command in state.commands:
                _command(stage, command)
            state.stages[bar.symbol] = stage
        return stage

    def _poison(self, value: bytes, partition: int, offset: int, reason: str) -> Outcome:
        ctx = Context(self._run_id, STAGE)
        dead = DeadLettered(
            event_id=ctx.derive_id("dlq", self._topic, partition, offset), ts_event=0,
            ts_init=0, correlation_id="", causation_id="", producer=STAGE,
            run_id=self._run_id, source_topic=self._topic, source_partition=partition,
            source_offset=offset, stage=STAGE, reason=reason, payload=bytes(value))
        evaluation = self._encode_evaluation(Evaluation(
            source_partition=partition, source_offset=offset, bar=None))
        return Outcome(None, evaluation, [], dead)


def _command(stage, command) -> None:
    """Hand an operator command to a strategy stage (it routes the ones it acts on; its
    outputs, none for StrategyDisabled/Enabled, have no topic here)."""
    handler = stage.routes().get(type(command))
    if handler is not None:
        handler(command)


def _fingerprint(config: FiretapeConfig) -> str:
    """What a snapshot must have been made with to be used: the source of the strategy
    stage, the indicators and each configured strategy's module, and the strategy part of
    the config (names, parameters, the volatility the sizing asks for). A deployment of
    changed code or config then rebuilds from md.bars instead of unpickling old state."""
    import inspect
    from pathlib import Path

    import agents.strategy
    import strategies.indicators
    from strategies.registry import resolve

    files = {Path(inspect.getfile(agents.strategy)), Path(__file__)}
    indicators = Path(inspect.getfile(strategies.indicators)).parent
    files |= set(indicators.glob("*.py")) | set(indicators.parent.glob("*.py"))
    files |= {Path(inspect.getfile(resolve(name))) for name in config.run.strategies}
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"snapshot format {SNAPSHOT_FORMAT}".encode())
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(repr(strategy_setup(config)).encode())
    return digest.hexdigest()
