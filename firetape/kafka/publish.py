"""The market-data feed on Kafka: bars from a BarFrame onto md.bars, one time at a time,
each time closed by a watermark on md.watermarks.

Bars go out in the replay order of the embedded feed ((ts, partition, symbol)), keyed by
symbol, to the partition Kafka's own partitioner would choose. After the bars of one time
are acknowledged, the watermark names the offset of the last bar of that time in each
partition it touched: that is what lets the account agent merge partitions exactly as the
embedded bus orders them, without waiting on empty partitions or on the next bar.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from connectors.files.frame import BarFrame
from firetape.kafka import clients
from firetape.kafka.settings import AgentSettings
from firetape.kafka.topology import WATERMARKS, Topology
from firetape.kafka.wire import Watermark, headers, watermark_codec
from firetape.runtime.feed import bar_events, in_replay_order
from topics.codec import codec
from topics.partitioner import partition_for


MAX_OPEN_TIMES = 64   # times sent but not yet closed by a watermark (backpressure)


@dataclass
class PublishResult:
    bars: int
    times: int
    seconds: float


def _groups(events):
    """Consecutive bars of one ts_event."""
    group: list = []
    for event in events:
        if group and event.ts_event != group[0].ts_event:
            yield group
            group = []
        group.append(event)
    if group:
        yield group


async def publish_bars(settings: AgentSettings, frame: BarFrame, run_id: str, *,
                       speed: float | None = None, stop: Callable[[], bool] = lambda: False,
                       on_progress: Callable[[int], None] | None = None,
                       on_sent: Callable[[object, int], None] | None = None) -> PublishResult:
    """Publish `frame` to md.bars (and its watermarks); `speed` None is as fast as possible,
    else event time runs `speed` times faster than wall time. `on_sent(bar, wall_ns)` is
    called as each bar is handed to the producer (the benchmark's latency origin)."""
    topology = Topology(settings.prefix)
    bars_topic, marks_topic = topology.name("md.bars"), topology.name(WATERMARKS)
    partitions = topology.partitions("md.bars")
    encode = codec("md.bars").encode
    encode_mark = watermark_codec[0]
    await clients.ensure_topics(settings)
    ordered = in_replay_order(frame)
    producer = clients.producer(settings)
    await producer.start()
    started = time.monotonic()
    ts0 = int(ordered.ts[0]) if len(ordered) else 0
    bars = times = 0
    # A time's watermark needs the offsets of its bars, i.e. their acknowledgements. The
    # next times' bars are sent meanwhile and each time is closed, in order, once its bars
    # are acknowledged (waiting for every time's acks before sending on capped the feed at
    # one broker round trip per time); at most MAX_OPEN_TIMES are open at once.
    open_times: deque[tuple[int, list]] = deque()

    async def close_times(wait_for: int) -> None:
        """Send the watermark of every leading open time whose bars are acknowledged,
        waiting for the acknowledgements until at most `wait_for` times stay open."""
        while open_times and (len(open_times) > wait_for
                              or all(f.done() for f in open_times[0][1])):
            ts_event, sent = open_times.popleft()
            offsets: dict[int, int] = {}
            for future in sent:
                meta = await future
                offsets[meta.partition] = max(offsets.get(meta.partition, -1), meta.offset)
            mark = Watermark(ts_event=ts_event, run_id=run_id, offsets=offsets)
            await producer.send(marks_topic, encode_mark(mark), key=b"feed", partition=0,
                                headers=headers("Watermark", f"{run_id}:{mark.ts_event}"))

    try:
        for group in _groups(bar_events(ordered, run_id)):
            if stop():
                break
            if speed is not None:
                delay = started + (group[0].ts_event - ts0) / 1e9 / speed - time.monotonic()
                if delay > 0:
                    await close_times(0)          # nothing else to do meanwhile
                    await asyncio.sleep(delay)
            sent = []
            for bar in group:
                key = bar.symbol.encode()
                sent_ns = time.time_ns()
                sent.append(await producer.send(
                    bars_topic, encode(bar), key=key, partition=partition_for(key, partitions),
                    headers=headers("Bar", bar.event_id)))
                if on_sent:
                    on_sent(bar, sent_ns)
            open_times.append((group[0].ts_event, sent))
            await close_times(MAX_OPEN_TIMES if speed is None else 0)
            bars += len(group)
            times += 1
            if on_progress:
                on_progress(bars)
        await close_times(0)
        await producer.flush()
    finally:
        await producer.stop()
    return PublishResult(bars, times, time.monotonic() - started)


def backtest_run_id(config, frame: BarFrame) -> str:
    """The run id `firetape backtest` gives the same config and data, so a publication
    and its embedded backtest make the same ids (what the parity test compares)."""
    from firetape.runtime.session import data_digest, make_run_id

    return make_run_id(config, data_digest(frame), "backtest")
