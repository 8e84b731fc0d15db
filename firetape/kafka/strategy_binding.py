"""The strategy stage as a function of one md.bars record and that symbol's saved state.

No faust here (the faust agent in `agents.py` only moves bytes), so this is what the unit
tests drive. A symbol's state is a whole StrategyStage that has only ever seen that symbol:
a StrategyStage keeps everything per symbol, so a per-symbol stage makes the same events
with the same ids as the embedded runtime's single stage, and it pickles into one table
value. The value starts with the md.bars offset of the last bar applied, which is how a
redelivered record (at-least-once, after a crash) is recognised instead of being applied
twice.
"""
from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass

import msgspec

from agents.context import Context
from firetape.config import FiretapeConfig
from firetape.kafka.wire import Evaluation, evaluation_codec
from firetape.runtime.pipeline import build_stages
from schemas import DeadLettered
from schemas.market import Bar
from topics.codec import codec

_OFFSET = struct.Struct(">q")
STAGE = "strategy"


@dataclass
class Outcome:
    """What one md.bars record produced: the evaluation record (None if this record was
    already applied and its evaluation is not the last one saved), the signal events, a
    dead letter for an undecodable record, and the symbol's new table value."""

    symbol: str | None
    evaluation: bytes | None
    signals: list
    dead_letter: DeadLettered | None
    state: bytes | None


class StrategyEvaluator:
    """Applies md.bars records to per-symbol strategy stages kept as table values."""

    def __init__(self, config: FiretapeConfig, topic: str = "md.bars", run_id: str = "") -> None:
        self._config = config
        self._topic = topic
        self._run_id = run_id
        self._decode = codec("md.bars").decode
        self._encode_evaluation = evaluation_codec[0]
        # symbol -> (offset of the table value it was loaded from, stage): saves an unpickle
        # per bar while this worker owns the symbol; the offset check catches a value
        # another worker wrote after a rebalance.
        self._cache: dict[str, tuple[int, object]] = {}

    def apply(self, value: bytes, partition: int, offset: int, saved: bytes | None) -> Outcome:
        """Evaluate the record at (`partition`, `offset`) given its symbol's `saved` value."""
        try:
            bar = self._decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._poison(value, partition, offset, f"undecodable: {exc}")
        last_offset = _OFFSET.unpack_from(saved)[0] if saved else -1
        if offset <= last_offset:
            return self._redelivered(bar.symbol, offset, last_offset, saved)
        stage = self._stage(bar, last_offset, saved)
        events = list(stage.on_bar(bar))
        evaluation = self._encode_evaluation(Evaluation(
            source_partition=partition, source_offset=offset, bar=bar, events=events))
        state = _OFFSET.pack(offset) + pickle.dumps((stage, evaluation), pickle.HIGHEST_PROTOCOL)
        self._cache[bar.symbol] = (offset, stage)
        return Outcome(bar.symbol, evaluation, events, None, state)

    def _stage(self, bar: Bar, last_offset: int, saved: bytes | None):
        cached = self._cache.get(bar.symbol)
        if cached is not None and cached[0] == last_offset:
            return cached[1]
        if saved:
            return pickle.loads(saved[_OFFSET.size:])[0]
        run_id = self._run_id or bar.run_id
        return next(s for s in build_stages(self._config, run_id) if s.name == STAGE)

    def _redelivered(self, symbol: str, offset: int, last_offset: int,
                     saved: bytes) -> Outcome:
        # The last applied record may have been saved without its evaluation reaching the
        # topic (a crash between the two sends): send it again, the account agent drops
        # the duplicate by bar id. Older records were followed by later saves, so their
        # evaluations went out before.
        evaluation = None
        if offset == last_offset:
            evaluation = pickle.loads(saved[_OFFSET.size:])[1]
        return Outcome(symbol, evaluation, [], None, None)

    def _poison(self, value: bytes, partition: int, offset: int, reason: str) -> Outcome:
        ctx = Context(self._run_id, STAGE)
        dead = DeadLettered(
            event_id=ctx.derive_id("dlq", self._topic, partition, offset), ts_event=0,
            ts_init=0, correlation_id="", causation_id="", producer=STAGE,
            run_id=self._run_id, source_topic=self._topic, source_partition=partition,
            source_offset=offset, stage=STAGE, reason=reason, payload=bytes(value))
        evaluation = self._encode_evaluation(Evaluation(
            source_partition=partition, source_offset=offset, bar=None))
        return Outcome(None, evaluation, [], dead, None)
