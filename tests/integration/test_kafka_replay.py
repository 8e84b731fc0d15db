"""`firetape replay --from-kafka` on a real broker: a range of a published md.bars topic,
backtested, gives the digests of the embedded backtest of the same bars from the file; republished with
--into-kafka, the Kafka agents make the same orders and fills. One test, one publication:
the broker tests share two cores with everything else."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from firetape.kafka.readback import digest, read_topic
from tests.integration.kafka_harness import (DEMO_CONFIG, REPO, SAMPLE, AgentProcess,
                                             agent_env, publish_cli, wait_for_count)

pytestmark = pytest.mark.kafka


def _replay_cli(bootstrap: str, tmp_path, *args: str) -> dict:
    out = tmp_path / f"replay-{len(list(tmp_path.glob('replay-*.json')))}.json"
    env = agent_env(bootstrap, "", tmp_path)
    done = subprocess.run([sys.executable, "-m", "firetape.cli", "replay", "--config", str(DEMO_CONFIG), "--runs", str(tmp_path / "runs"),
                           "--json", str(out), *args],
                          env=env, cwd=REPO, capture_output=True, timeout=180)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    return json.loads(out.read_text())


def test_replay_kafka_when_time_range_then_backtest_equals_file_backtest_and_agents_agree(
        kafka_bootstrap, tmp_path):
    from connectors.files import load_bars
    from firetape.config import load_config
    from firetape.runtime.session import run_session

    publish_cli(kafka_bootstrap, "rsrc.")
    frame = load_bars([SAMPLE])
    times = np.unique(frame.ts)
    start, end = int(times[100]), int(times[400])
    expected = run_session(frame.take(np.flatnonzero((frame.ts >= start) & (frame.ts < end))),
                           load_config(DEMO_CONFIG, environ={}), tmp_path / "expected",
                           audit=False)
    iso = [np.datetime64(t, "ns").astype(str) + "Z" for t in (start, end)]
    got = _replay_cli(kafka_bootstrap, tmp_path, "--from-kafka", "rsrc.md.bars",
                      "--start", iso[0], "--end", iso[1], "--into-kafka", "rrun")
    assert got["bars"] == expected.bars == 300 * len(frame.symbols)
    assert got["digests"] == expected.digests and got["run_id"] == expected.run_id
    assert got["counts"]["orders"] > 0

    with AgentProcess(kafka_bootstrap, "rrun.", tmp_path, "agents", "--no-audit") as worker:
        wait_for_count(kafka_bootstrap, "rrun.account.sequence", expected.bars,
                       agents=(worker,))
    for topic in ("order.requests", "risk.decisions", "orders", "order.updates", "fills"):
        records = asyncio.run(read_topic(kafka_bootstrap, "rrun." + topic))
        assert digest(records) == expected.digests[topic], topic
    _offset_ranges(kafka_bootstrap, "rsrc.md.bars")


def _offset_ranges(bootstrap: str, topic: str) -> None:
    """Offset bounds apply to every partition: [10, 20) is ten records of each."""
    from firetape.kafka.replay import Bound, ReplayRangeError, read_bars

    part = asyncio.run(read_bars(bootstrap, topic, Bound.parse("10", "start"),
                                 Bound.parse("20", "end")))
    assert part.partitions and all(span == (10, 19) for span in part.partitions.values())
    assert len(part.frame) == part.records == 10 * len(part.partitions)
    with pytest.raises(ReplayRangeError, match="neither an offset"):
        Bound.parse("yesterday-ish", "start")
    with pytest.raises(ReplayRangeError, match="no bar"):
        asyncio.run(read_bars(bootstrap, topic, Bound(offset=10**6), Bound()))

