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
faust committed or did not. (faust's table changelog is written by its buffered,
non-transactional producer, so a table recovered after SIGKILL could miss bars whose
input offsets were committed; nothing here depends on it.)
"""
from __future__ import annotations

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

    def needs_rebuild(self, partition: int, offset: int) -> bool:
        """Whether the stage of `partition` is not the fold of exactly the records before
        `offset` (then call `rebuild` with md.bars[partition][0, offset) first)."""
        state = self._partitions.get(partition)
        if state is None:
            return offset > 0
        return state.next_offset != offset

    def rebuild(self, partition: int, values: Iterable[bytes], until: int) -> None:
        """Replace the stage of `partition` by the fold of `values` (its records from
        offset 0 up to `until`, exclusive), outputs dropped."""
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
