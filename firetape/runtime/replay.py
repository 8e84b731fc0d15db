"""Replay a recorded run: its market-data topic, through the same stages, with its own
recorded config and run id, into a fresh log; then compare every topic byte for byte."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec

from firetape.config import FiretapeConfig, validate_strategies
from firetape.eventlog import EventLog, merge_partitions
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.live_inputs import LIVE_MODE
from firetape.runtime.pipeline import build_stages
from firetape.runtime.session import LOG_DIR, read_meta
from topics.codec import codec

INPUT_TOPIC = "md.bars"


@dataclass
class TopicComparison:
    topic: str
    original: str | None
    replayed: str | None

    @property
    def match(self) -> bool:
        return self.original == self.replayed


@dataclass
class ReplayResult:
    run_id: str
    bars: int
    dead_letters: int
    topics: list[TopicComparison]

    @property
    def identical(self) -> bool:
        return all(t.match for t in self.topics)


def replay_run(run_dir: str | Path, keep: Path | None = None) -> ReplayResult:
    """Replay `run_dir`; the replayed log goes to `keep` if given, else a temp dir."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    config = msgspec.convert(meta["config"], FiretapeConfig, strict=False)
    validate_strategies(config, str(run_dir / "run.json"))
    run_id = meta["run_id"]
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="firetape-replay-"))
    try:
        decode = codec(INPUT_TOPIC).decode
        with EventLog(run_dir / LOG_DIR, mode="r") as original, \
                EventLog(work, mode="a") as replayed:
            if meta.get("mode") == LIVE_MODE:
                # A live run's inputs include the broker's reports, in the loop's order.
                from firetape.runtime.live_inputs import replay_live_inputs
                bus, bars = replay_live_inputs(config, run_id, original, replayed)
                records = ()
            else:
                bus = EmbeddedBus(build_stages(config, run_id), replayed, run_id)
                bars = 0
                records = merge_partitions(original, INPUT_TOPIC)
            for record in records:
                try:
                    event = decode(record.value)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    bus.dead_letter_raw(INPUT_TOPIC, record.partition, record.offset,
                                        bytes(record.value), f"undecodable: {exc}",
                                        record.ts_event)
                    continue
                bus.publish(event)
                bars += 1
            bus.finish()
            replayed.flush()
            before, after = original.digests(), replayed.digests()
        topics = [TopicComparison(t, before.get(t), after.get(t))
                  for t in sorted(set(before) | set(after))]
        return ReplayResult(run_id, bars, bus.dead_letters, topics)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
