"""StrategyDisabled / StrategyEnabled on a real broker: the sample published in three
parts, the strategy disabled (by `firetape control disable-strategy`) between the first
two and enabled again between the last two.

* uninterrupted: each md.bars partition takes each command at its first bar after it
  (recorded on strategy.control), no signal of the strategy for the bars between, and the
  signals equal the embedded strategy stage given the same commands between the same bars;
* the strategy worker SIGKILLed while disabled and restarted, and three workers of which
  one is killed (its partitions move): the same command points, and the same signals,
  orders, fills and decisions as the uninterrupted run.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from firetape.kafka.readback import digest, read_topic
from tests.integration.kafka_harness import (DEMO_CONFIG, REPO, SAMPLE, AgentProcess,
                                             agent_env, wait_for_count)

pytestmark = pytest.mark.kafka

OUTPUT_TOPICS = ("order.requests", "risk.decisions", "orders", "order.updates", "fills")


class Sample:
    """The sample split in three by time, with its run id and the strategy to switch."""

    def __init__(self) -> None:
        from connectors.files import load_bars
        from firetape.config import load_config
        from firetape.kafka.publish import backtest_run_id

        self.config = load_config(DEMO_CONFIG, environ={})
        frame = load_bars([SAMPLE])
        self.run_id = backtest_run_id(self.config, frame)
        times = np.unique(frame.ts)
        self.cuts = (int(times[len(times) // 3]), int(times[2 * len(times) // 3]))
        bounds = (-1, *self.cuts, int(times[-1]) + 1)
        self.parts = [frame.take(np.nonzero((frame.ts >= lo) & (frame.ts < hi))[0])
                      for lo, hi in zip(bounds[:-1], bounds[1:])]
        self.frame = frame
        self.strategy = self._busiest_strategy()

    def embedded_signals(self, strategy: str | None) -> list[bytes]:
        """The embedded strategy stage over the whole sample, `strategy` disabled from the
        first bar of part 2 to the first bar of part 3 (None: no command)."""
        from firetape.runtime.feed import bar_events, in_replay_order
        from firetape.runtime.pipeline import build_stages
        from schemas import StrategyDisabled, StrategyEnabled
        from topics.codec import codec

        stage = next(s for s in build_stages(self.config, self.run_id) if s.name == "strategy")
        encode, state = codec("signals").encode, 0
        out = []
        for bar in bar_events(in_replay_order(self.frame), self.run_id):
            if strategy and state < 2 and bar.ts_event >= self.cuts[state]:
                kind = (StrategyDisabled, StrategyEnabled)[state]
                stage.routes()[kind](_command(kind, strategy))
                state += 1
            out.extend(encode(e) for e in stage.on_bar(bar))
        return out

    def _busiest_strategy(self) -> str:
        from topics.codec import codec

        decode, counts = codec("signals").decode, {}
        for value in self.embedded_signals(None):
            signal = decode(value)
            if self.cuts[0] <= signal.ts_event < self.cuts[1]:
                counts[signal.strategy] = counts.get(signal.strategy, 0) + 1
        return max(sorted(counts), key=counts.get)


def _command(kind, strategy):
    return kind(event_id="x", ts_event=0, ts_init=0, correlation_id="x", causation_id="",
                producer="operator", run_id="ops", strategy=strategy)


@pytest.fixture(scope="module")
def sample() -> Sample:
    return Sample()


def _publish(bootstrap: str, prefix: str, sample: Sample, part: int, speed=None) -> None:
    from firetape.kafka.publish import publish_bars
    from firetape.kafka.settings import AgentSettings

    asyncio.run(publish_bars(AgentSettings(bootstrap=bootstrap, prefix=prefix),
                             sample.parts[part], sample.run_id, speed=speed))


def _control_cli(bootstrap: str, prefix: str, *args: str) -> str:
    """`firetape control ...` as an operator runs it."""
    done = subprocess.run([sys.executable, "-m", "firetape.cli", "control", *args],
                          env=agent_env(bootstrap, prefix, Path("/tmp")), cwd=REPO,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    return done.stdout.decode()


def _topic(bootstrap: str, prefix: str, topic: str):
    return asyncio.run(read_topic(bootstrap, prefix + topic))


def _points(bootstrap: str, prefix: str) -> set[tuple]:
    """(md.bars partition, offset, command, strategy) of every marker that stands."""
    from firetape.kafka.strategy_control import marker_codec

    points, seen = set(), set()
    for record in _topic(bootstrap, prefix, "strategy.control"):
        marker = marker_codec[1](record.value)
        if (marker.source_partition, marker.control_offset) not in seen:
            seen.add((marker.source_partition, marker.control_offset))
            points.add((marker.source_partition, marker.source_offset,
                        type(marker.command).__name__, marker.command.strategy))
    return points


def _first_offsets(sample: Sample, part: int) -> dict[int, int]:
    """md.bars partition -> offset of the first bar of `part` (bars go out in order)."""
    from topics.partitioner import partition_for

    counts: dict[int, int] = {}
    for index in range(part):
        for symbol in sample.parts[index].symbol:
            p = partition_for(str(symbol).encode(), 8)
            counts[p] = counts.get(p, 0) + 1
    return counts


def _wait_points(bootstrap: str, prefix: str, count: int, agents, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        points = _points(bootstrap, prefix)
        if len(points) >= count:
            return points
        time.sleep(0.3)
    logs = "\n".join(f"--- {a.args}:\n{a.output()}" for a in agents)
    raise AssertionError(f"{len(_points(bootstrap, prefix))} command points after "
                         f"{timeout:.0f} s, expected {count}\n{logs}")


def _run(bootstrap: str, tmp_path: Path, prefix: str, sample: Sample, strategy_workers: int = 1,
         kill: int = 0, snapshot_every: int = 40) -> dict:
    """Part 1, disable, part 2, enable, part 3 through `strategy_workers` strategy workers
    and one account worker; with `kill`, that many strategy workers are SIGKILLed while
    part 2 is being evaluated (after every partition has taken the command) and started
    again. Returns the topics read back once the account has sequenced every bar, and the
    strategy workers' logs."""
    partitions = len(_first_offsets(sample, 3))
    strategies = [AgentProcess(bootstrap, prefix, tmp_path, "agent", "strategy")
                  for _ in range(strategy_workers)]
    for worker in strategies:
        worker.env["FIRETAPE_SNAPSHOT_EVERY"] = str(snapshot_every)
    account = AgentProcess(bootstrap, prefix, tmp_path, "agent", "account")
    agents = (*strategies, account)
    sizes = [len(part) for part in sample.parts]
    try:
        for agent in agents:
            agent.start()
        _publish(bootstrap, prefix, sample, 0)
        wait_for_count(bootstrap, prefix + "strategy.evaluated", sizes[0], agents=agents)
        said = _control_cli(bootstrap, prefix, "disable-strategy", sample.strategy,
                            "--operator", "pytest")
        assert f"StrategyDisabled({sample.strategy}) by pytest sent to {prefix}control@" in said
        time.sleep(2.0)                     # the workers have read it before part 2 comes
        publisher = threading.Thread(target=_publish, daemon=True, args=(
            bootstrap, prefix, sample, 1, 86400 * 60 if kill else None))
        publisher.start()
        _wait_points(bootstrap, prefix, partitions, agents)
        if kill:
            time.sleep(0.5)
            for worker in strategies[:kill]:
                worker.kill()
            for worker in strategies[:kill]:
                worker.start()
        publisher.join(timeout=120)
        wait_for_count(bootstrap, prefix + "account.sequence", sum(sizes[:2]) + 1,
                       agents=agents)
        _control_cli(bootstrap, prefix, "enable-strategy", sample.strategy)
        time.sleep(2.0)
        _publish(bootstrap, prefix, sample, 2)
        wait_for_count(bootstrap, prefix + "account.sequence", sum(sizes) + 2, agents=agents)
    finally:
        for agent in agents:
            agent.stop()
    topics = ("signals", "strategy.evaluated", "dlq", *OUTPUT_TOPICS)
    found = {topic: _topic(bootstrap, prefix, topic) for topic in topics}
    found["points"] = _points(bootstrap, prefix)
    found["points_text"] = _control_cli(bootstrap, prefix, "strategy-points")
    found["logs"] = "\n".join(w.log_path.read_text(errors="replace") for w in strategies)
    return found


def _unique_values(records) -> list[bytes]:
    """Record values by partition and offset, a redelivered one (same event) once."""
    seen, out = set(), []
    for record in records:
        if record.value not in seen:
            seen.add(record.value)
            out.append(record.value)
    return out


@pytest.fixture(scope="module")
def uninterrupted(kafka_bootstrap, tmp_path_factory, sample):
    return _run(kafka_bootstrap, tmp_path_factory.mktemp("steady"), "sctl.", sample)


def test_strategy_disabled_when_sent_mid_stream_then_no_signals_until_enabled_as_embedded(
        uninterrupted, sample):
    from topics.codec import codec

    # Each partition took each command at its first bar after it, and says so.
    expected = {(p, offset, "StrategyDisabled", sample.strategy)
                for p, offset in _first_offsets(sample, 1).items()}
    expected |= {(p, offset, "StrategyEnabled", sample.strategy)
                 for p, offset in _first_offsets(sample, 2).items()}
    assert uninterrupted["points"] == expected
    assert uninterrupted["dlq"] == []                 # the account took the commands too
    assert f"StrategyDisabled({sample.strategy})" in uninterrupted["points_text"]

    decode = codec("signals").decode
    signals = [decode(v) for v in _unique_values(uninterrupted["signals"])]
    mine = [s.ts_event for s in signals if s.strategy == sample.strategy]
    assert any(ts < sample.cuts[0] for ts in mine)              # before the command
    assert not any(sample.cuts[0] <= ts < sample.cuts[1] for ts in mine)
    assert any(ts >= sample.cuts[1] for ts in mine)             # resumed after enabling
    # ... exactly as the embedded strategy stage with the commands between the same bars.
    assert sorted(_unique_values(uninterrupted["signals"])) == sorted(
        sample.embedded_signals(sample.strategy))


def test_strategy_worker_when_killed_while_disabled_then_same_points_and_outputs(
        kafka_bootstrap, tmp_path, uninterrupted, sample):
    # No snapshots: the restarted worker rebuilds from offset 0, through the markers.
    killed = _run(kafka_bootstrap, tmp_path, "sctl-kill.", sample, kill=1, snapshot_every=0)
    _assert_same_run(killed, uninterrupted)
    assert "from the start" in killed["logs"]


def test_three_strategy_workers_when_one_killed_while_disabled_then_same_points_and_outputs(
        kafka_bootstrap, tmp_path, uninterrupted, sample):
    moved = _run(kafka_bootstrap, tmp_path, "sctl-scale.", sample, strategy_workers=3,
                 kill=1)
    _assert_same_run(moved, uninterrupted)
    assert "from the snapshot at" in moved["logs"]      # the disabled set came with it


def _assert_same_run(found: dict, reference: dict) -> None:
    assert found["points"] == reference["points"]
    for topic in ("signals", "strategy.evaluated"):         # at-least-once: same records
        assert sorted(_unique_values(found[topic])) == sorted(
            _unique_values(reference[topic])), topic
    for topic in OUTPUT_TOPICS:                              # exactly-once: same bytes
        assert digest(found[topic]) == digest(reference[topic]), topic
