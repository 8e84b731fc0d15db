"""A deterministic backtest over a range of a Kafka market-data topic
(`firetape replay --from-kafka TOPIC --start .. --end ..`).

The range is read once (read_committed), its bars are put in a BarFrame and run through
the embedded runtime like a file would be: same replay order, same run id for the same
bars and config, same digests. So a range of a live topic can be backtested exactly, and
compared with what the Kafka agents made of it. `--into-kafka RUN` also republishes the
range (bars and watermarks, by the feed's own code) into the topics of namespace `RUN.`,
where `firetape agents --prefix RUN.` processes it as live data.

Bounds: an integer is an offset, applied to every partition (start inclusive, end
exclusive); anything else is a time (ISO 8601, UTC unless it says otherwise), compared
with each bar's ts_event (start inclusive, end exclusive). Event time, not the broker's
timestamps, so the same range gives the same bars however and whenever they were
published. A record that does not decode as a bar is counted and left out (the strategy
agent dead-letters it on the live path).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from connectors.files.frame import VALUE_COLUMNS, BarFrame
from firetape.kafka.readback import read_range
from topics.codec import codec

OPEN_END = 2**63 - 1


class ReplayRangeError(ValueError):
    """A bound that is neither an offset nor a time, or an empty range; says which."""


@dataclass(frozen=True)
class Bound:
    """One end of a range: an offset (every partition) or an event time in ns."""

    offset: int | None = None
    ts: int | None = None

    @classmethod
    def parse(cls, text: str | None, name: str) -> Bound:
        """`text` as an offset (digits) or a time; None is open."""
        if text is None or text == "":
            return cls()
        text = text.strip()
        if text.lstrip("-").isdigit():
            value = int(text)
            if value < 0:
                raise ReplayRangeError(f"--{name} {text}: an offset is >= 0")
            return cls(offset=value)
        try:
            stamp = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ReplayRangeError(f"--{name} {text!r}: neither an offset (an integer) nor "
                                   f"a time (ISO 8601, e.g. 2024-01-02T14:30Z)") from None
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        return cls(ts=int(stamp.tz_convert("UTC").value))


@dataclass(frozen=True)
class KafkaRange:
    """The bars of a topic range, and what was left out."""

    topic: str
    frame: BarFrame
    records: int          # records read in the offset range
    undecodable: int      # of those, not a bar
    partitions: dict[int, tuple[int, int]]   # partition -> (first, last) offset taken


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()   # noqa: SLF001 (fresh topic)
            partitions = consumer.partitions_for_topic(topic)
        return sorted(partitions or ())
    finally:
        await consumer.stop()


async def read_bars(bootstrap: str, topic: str, start: Bound, end: Bound) -> KafkaRange:
    """The bars of `topic` within [start, end) (see the module docstring)."""
    partitions = await _partitions(bootstrap, topic)
    if not partitions:
        raise ReplayRangeError(f"topic {topic!r} does not exist on {bootstrap}")
    first = start.offset or 0
    last = end.offset if end.offset is not None else OPEN_END
    lo = start.ts if start.ts is not None else -OPEN_END
    hi = end.ts if end.ts is not None else OPEN_END
    decode = codec("md.bars").decode
    bars, taken, records, undecodable = [], {}, 0, 0
    for partition in partitions:
        for record in await read_range(bootstrap, topic, partition, first, last):
            records += 1
            try:
                bar = decode(record.value)
            except (msgspec.DecodeError, msgspec.ValidationError):
                undecodable += 1
                continue
            if lo <= bar.ts_event < hi:
                bars.append(bar)
                span = taken.get(partition, (record.offset, record.offset))
                taken[partition] = (span[0], record.offset)
    if not bars:
        raise ReplayRangeError(f"no bar of {topic} in the range ({records} records read, "
                               f"{undecodable} undecodable)")
    frame = BarFrame.from_columns(
        np.array([b.ts_event for b in bars], dtype=np.int64), [b.symbol for b in bars],
        sources=(f"kafka:{topic}",),
        **{c: np.array([getattr(b, c) for b in bars], dtype=np.float64) for c in VALUE_COLUMNS})
    return KafkaRange(topic, frame, records, undecodable, taken)


@dataclass(frozen=True)
class KafkaReplay:
    range: KafkaRange
    result: object              # firetape.runtime.session.SessionResult
    republished: str | None     # the namespace the range went to (--into-kafka)
    republished_bars: int = 0


def replay_kafka(bootstrap: str, topic: str, start: Bound, end: Bound, config,
                 runs: Path, *, into_kafka: str | None = None) -> KafkaReplay:
    """Read the range, backtest it in the embedded runtime (no audit), and with
    `into_kafka` republish it into namespace `into_kafka.` under the backtest's run id
    (so the agents' ids equal the backtest's)."""
    from firetape.runtime.session import run_session

    taken = asyncio.run(read_bars(bootstrap, topic, start, end))
    result = run_session(taken.frame, config, runs, sources=(f"kafka:{topic}",), audit=False)
    published = 0
    prefix = None
    if into_kafka:
        from firetape.kafka.publish import publish_bars
        from firetape.kafka.settings import AgentSettings

        prefix = into_kafka if into_kafka.endswith(".") else f"{into_kafka}."
        settings = AgentSettings(bootstrap=bootstrap, prefix=prefix)
        published = asyncio.run(publish_bars(settings, taken.frame, result.run_id)).bars
    return KafkaReplay(taken, result, prefix, published)
