"""The market-data feed of the embedded runtime: bars from a BarFrame as Bar events.

Replay order rule (documented in the README): input records are taken in the order
(ts_event, partition, offset). The feed publishes a frame in the same order: by time,
then by the md.bars partition of the symbol, then by symbol. So the order in which a
replay merges the recorded partitions is exactly the order of the original run.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from connectors.files.frame import BarFrame
from schemas import Bar
from topics.partitioner import partition_for
from topics.registry import spec

PRODUCER = "feed"


def in_replay_order(frame: BarFrame) -> BarFrame:
    """The frame's rows sorted by (ts, md.bars partition of the symbol, symbol)."""
    partitions = spec("md.bars").partitions
    of_code = np.array([partition_for(s.encode(), partitions) for s in frame.symbols] or [0])
    index = np.lexsort((frame.symbol_code, of_code[frame.symbol_code], frame.ts))
    return frame.take(index)


def bar_events(frame: BarFrame, run_id: str) -> Iterator[Bar]:
    """One Bar event per row, in the frame's order. Each bar starts a correlation chain;
    its id is derived from the symbol and time, which are unique in a validated frame."""
    last_ts, ts_text = None, ""
    for rows in frame.row_chunks():
        for ts, symbol, open_, high, low, close, volume in rows:
            if ts != last_ts:   # every symbol's bar of one time shares the time's text
                last_ts, ts_text = ts, str(ts)
            event_id = f"{symbol}:{ts_text}"
            yield Bar(event_id=event_id, ts_event=ts, ts_init=ts, correlation_id=event_id,
                      causation_id="", producer=PRODUCER, run_id=run_id, symbol=symbol,
                      open=open_, high=high, low=low, close=close, volume=volume)
