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
start there instead of at offset 0; one that does not match is ignored. (faust's table changelog is written by its buffered,
non-transactional producer, so a table recovered after SIGKILL could miss bars whose
input offsets were committed; nothing here depends on it.)
"""
from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from agents.context import Context
from firetape.config import FiretapeConfig
from firetape.kafka.wire import Evaluation, evaluation_codec
from firetape.runtime.pipeline import build_stages
from schemas import DeadLettered
from topics.codec import codec

STAGE = "strategy"


@dataclass
class Outcome:
    """What one md.bars record produced: its evaluation record, the signal events, and a
    dead letter for an undecodable record."""

    symbol: str | None
    evaluation: bytes
    signals: list
    dead_letter: DeadLettered | None


class _Partition:
    __slots__ = ("stages", "next_offset")

    def __init__(self) -> None:
        self.stages: dict[str, object] = {}    # symbol -> its stage (adopts the bar's run id)
        self.next_offset = 0


class StrategyEvaluator:
    """Applies md.bars records to per-symbol strategy stages, tracked per partition."""

    def __init__(self, config: FiretapeConfig, topic: str = "md.bars", run_id: str = "") -> None:
        self._config = config
        self._topic = topic
        self._run_id = run_id
        self._decode = codec("md.bars").decode
        self._encode_evaluation = evaluation_codec[0]
        self._partitions: dict[int, _Partition] = {}
        self.rebuilds = 0
        self.fingerprint = _fingerprint(config)

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
        return pickle.dumps((self.fingerprint, state.next_offset, state.stages),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, partition: int, blob: bytes) -> int | None:
        """Make `blob` (from `snapshot`) the state of `partition`; the offset it covers up
        to, or None (state unchanged) if it was made by other code or another strategy
        config, or cannot be read."""
        try:
            fingerprint, next_offset, stages = pickle.loads(blob)
        except Exception:            # noqa: BLE001 - any unreadable snapshot is ignored
            return None
        if fingerprint != self.fingerprint:
            return None
        self._partitions[partition] = state = _Partition()
        state.stages, state.next_offset = stages, next_offset
        return next_offset

    def rebuild(self, partition: int, values: Iterable[bytes], until: int,
                start: int = 0) -> None:
        """Make the stage of `partition` the fold of its records up to `until`, exclusive:
        `values` are the records from offset `start`, applied with outputs dropped on top
        of the state `restore` left (start > 0) or of a fresh one (start 0)."""
        state = self._partitions.get(partition)
        if start == 0 or state is None or state.next_offset != start:
            if start:
                raise ValueError(f"no state of partition {partition} at offset {start}")
            self._partitions[partition] = state = _Partition()
        for value in values:
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
        state.next_offset = offset + 1
        try:
            bar = self._decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._poison(value, partition, offset, f"undecodable: {exc}")
        events = list(self._stage(state, bar).on_bar(bar))
        evaluation = self._encode_evaluation(Evaluation(
            source_partition=partition, source_offset=offset, bar=bar, events=events))
        return Outcome(bar.symbol, evaluation, events, None)

    def _stage(self, state: _Partition, bar):
        stage = state.stages.get(bar.symbol)
        if stage is None:
            run_id = self._run_id or bar.run_id
            stage = next(s for s in build_stages(self._config, run_id) if s.name == STAGE)
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

    files = {Path(inspect.getfile(agents.strategy))}
    indicators = Path(inspect.getfile(strategies.indicators)).parent
    files |= set(indicators.glob("*.py")) | set(indicators.parent.glob("*.py"))
    files |= {Path(inspect.getfile(resolve(name))) for name in config.run.strategies}
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    strategies_config = [(name, sorted(config.strategies.get(name, {}).items()))
                         for name in config.run.strategies]
    digest.update(repr((strategies_config, config.sizing.method)).encode())
    return digest.hexdigest()
