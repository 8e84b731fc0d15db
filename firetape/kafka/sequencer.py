"""The deterministic merge of strategy.evaluated's partitions into one account stream.

Kafka orders records only within a partition, and a consumer of several partitions gets
them in an order that depends on timing. The embedded runtime's order is fixed instead:
bars by (ts_event, md.bars partition, md.bars offset), each bar followed by its signals.
The merge restores that order:

* evaluations wait in a buffer;
* the feed's watermark for time t lists, per md.bars partition it wrote at t, the offset of
  its last bar; once evaluations covering those offsets have arrived, every buffered bar
  up to t is released, sorted by (ts_event, partition, offset);
* watermarks are applied one at a time in the order the feed wrote them.

So the result depends on what was published, never on when it arrived. A redelivered
evaluation (the strategy agent is at-least-once) is dropped by its bar: per symbol, bars
arrive in time order, so one at or before the symbol's last released time is a duplicate.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from firetape.kafka.wire import Evaluation, Sequenced, Watermark


@dataclass(frozen=True)
class Released:
    """An evaluation whose turn has come, with where the account agent read it."""

    evaluation: Evaluation
    input_partition: int
    input_offset: int
    watermark_offset: int


class Merger:
    """Buffers evaluations and watermarks; `release()` hands out what is due, in order."""

    def __init__(self) -> None:
        # Waiting evaluations as a heap on (ts_event, partition, offset), so releasing time
        # t pops only what is due (a scan of the whole buffer per watermark was quadratic
        # on a backlog); the keys are unique, so the tuples never compare further.
        self._buffer: list[tuple[tuple[int, int, int], Evaluation, int, int]] = []
        self._buffered: set[str] = set()             # event ids in the buffer
        self._coverage: dict[int, int] = {}          # md.bars partition -> offset evaluated
        self._marks: deque[tuple[Watermark, int]] = deque()
        self._released_ts: dict[str, int] = {}       # symbol -> time of its last released bar
        self.duplicates = 0
        self.positions: dict[int, int] = {}          # evaluated partition -> next offset
        self.watermark_position = 0                  # next md.watermarks offset

    def add_evaluation(self, evaluation: Evaluation, input_partition: int,
                       input_offset: int) -> None:
        """Take one record of strategy.evaluated."""
        self.positions[input_partition] = input_offset + 1
        partition, offset = evaluation.source_partition, evaluation.source_offset
        if offset > self._coverage.get(partition, -1):
            self._coverage[partition] = offset
        bar = evaluation.bar
        if bar is None:            # a dead-lettered record: it only moves the coverage
            return
        if bar.ts_event <= self._released_ts.get(bar.symbol, -1) or bar.event_id in self._buffered:
            self.duplicates += 1
            return
        self._buffered.add(bar.event_id)
        heapq.heappush(self._buffer, ((bar.ts_event, partition, offset), evaluation,
                                      input_partition, input_offset))

    def add_watermark(self, mark: Watermark, offset: int) -> None:
        """Take one record of md.watermarks."""
        self.watermark_position = offset + 1
        self._marks.append((mark, offset))

    def release(self) -> list[Released]:
        """Every bar whose time is closed by a satisfied watermark, in replay order."""
        out: list[Released] = []
        buffer, pop = self._buffer, heapq.heappop
        while self._marks and self._satisfied(self._marks[0][0]):
            mark, mark_offset = self._marks.popleft()
            while buffer and buffer[0][0][0] <= mark.ts_event:
                _, evaluation, input_partition, input_offset = pop(buffer)
                bar = evaluation.bar
                self._buffered.discard(bar.event_id)
                self._released_ts[bar.symbol] = bar.ts_event
                out.append(Released(evaluation, input_partition, input_offset, mark_offset))
        return out

    def _satisfied(self, mark: Watermark) -> bool:
        coverage = self._coverage
        return all(coverage.get(p, -1) >= offset for p, offset in mark.offsets.items())

    def restore(self, item: Sequenced) -> None:
        """Account for one already-sequenced input read back at start-up, so reading
        resumes right after it and nothing released is released again."""
        evaluation = item.evaluation
        if evaluation is None:
            return
        partition = evaluation.source_partition
        self._coverage[partition] = max(self._coverage.get(partition, -1),
                                        evaluation.source_offset)
        self.positions[partition] = max(self.positions.get(partition, 0), item.input_offset + 1)
        self.watermark_position = max(self.watermark_position, item.watermark_offset + 1)
        if evaluation.bar is not None:
            self._released_ts[evaluation.bar.symbol] = evaluation.bar.ts_event
