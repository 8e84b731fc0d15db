"""Determinism: the same inputs give the same bytes, a replay reproduces every topic, and
nothing a stage decides at time t depends on a bar after t."""
from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from connectors.files import load_bars
from connectors.files.frame import BarFrame
from firetape.config import load_config, with_strategies
from firetape.eventlog import EventLog
from firetape.runtime.replay import replay_run
from firetape.runtime.session import run_session
from topics.codec import codec

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "bars.csv"
DEMO = REPO / "config" / "demo.toml"

# The bundled sample through config/demo.toml. A change here must be deliberate: it means
# the pipeline's output for the same input changed. Update with the digests printed by
# `firetape demo` and say why in the commit.
GOLDEN_DEMO_DIGESTS: dict[str, str] = {
    "fills": "2ad582af9d7f13974a81579cd9f6e20cb618bc9fffe64ec0360536c3f5aabf9b",
    "md.bars": "3a1d6a8c8cbf8774b23e253c9e0ff2a66fa832a9301b7ee2bc2f616a411269c8",
    "order.requests": "f482b43ba54df5c2408a90958111f74cd477d2471c65a7909fca613de9df1054",
    "order.updates": "a6599c7cbcf071cd218dfe383fd56f5a3c0fabd2d948625202536b2abb52043a",
    "orders": "a409812c49338ff65592ef03e37468744775193d73b4363ef1ba1c41ca8aa201",
    "portfolio": "2fe11e03932515cb39d83cfe482fc1ae9f21da0a380a8e7f8a78c36e8f7c9e86",
    "risk.decisions": "cb9f1b57d8ebae793ea7ad2ba2310d6c862be98163a0c626341baa870459cb48",
    "signals": "c45013fa217d505f5316ab4e59f3409eccdf37d590bb4ec776051d40b7dc50f5",
}


@pytest.fixture(scope="module")
def demo_config():
    return load_config(DEMO, environ={})


@pytest.fixture(scope="module")
def sample():
    return load_bars([SAMPLE])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, sample, demo_config):
    return run_session(sample, demo_config, tmp_path_factory.mktemp("runs"), audit=False)


def test_backtest_when_run_twice_then_identical_digests(demo_run, sample, demo_config, tmp_path):
    again = run_session(sample, demo_config, tmp_path, audit=False)
    assert again.run_id == demo_run.run_id
    assert again.digests == demo_run.digests
    assert demo_run.counts["fills"] > 50   # the sample really trades


def test_backtest_when_sample_and_demo_config_then_golden_digests(demo_run):
    assert GOLDEN_DEMO_DIGESTS, "pin GOLDEN_DEMO_DIGESTS from `firetape demo`"
    assert demo_run.digests == GOLDEN_DEMO_DIGESTS


def test_backtest_order_events_when_paper_broker_then_each_records_simulated(demo_run):
    with EventLog(demo_run.run_dir / "log", mode="r") as log:
        events = [codec(topic).decode(r.value)
                  for topic in ("order.requests", "orders", "order.updates")
                  for r in log.read(topic)]
    assert len(events) > 100
    assert {e.account_type for e in events} == {"simulated"}


def test_replay_when_run_recorded_then_every_topic_identical(demo_run, tmp_path):
    result = replay_run(demo_run.run_dir, keep=tmp_path / "replayed")
    assert result.bars == 3024
    assert [t.topic for t in result.topics if not t.match] == []
    assert {t.topic for t in result.topics} == set(demo_run.digests)


def test_replay_when_run_directory_moved_then_it_still_replays(demo_run, tmp_path):
    import shutil

    moved = shutil.copytree(demo_run.run_dir, tmp_path / "elsewhere")
    assert replay_run(moved).identical


def test_replay_when_recorded_bar_is_undecodable_then_dead_lettered_and_stream_goes_on(
        demo_run, tmp_path):
    """Rewrite the recorded md.bars with one value replaced by garbage (valid framing)."""
    import shutil

    copy = Path(shutil.copytree(demo_run.run_dir, tmp_path / "poisoned"))
    source = EventLog(demo_run.run_dir / "log", mode="r")
    shutil.rmtree(copy / "log" / "md.bars")
    with EventLog(copy / "log", mode="a") as target:
        for partition in source.partitions("md.bars"):
            for record in source.read("md.bars", partition):
                value = b"\x00not json" if (partition, record.offset) == (
                    source.partitions("md.bars")[0], 5) else record.value
                target.append("md.bars", partition, record.key, value, record.ts_event,
                              record.ts_wall)
    source.close()
    result = replay_run(copy)
    assert result.dead_letters == 1
    assert result.bars == 3023
    # the dead letter itself is recorded with the reason and the original bytes
    replayed = tmp_path / "kept"
    replay_run(copy, keep=replayed)
    with EventLog(replayed, mode="r") as log:
        (record,) = list(log.read("dlq"))
    letter = codec("dlq").decode(record.value)
    assert letter.payload == b"\x00not json" and "undecodable" in letter.reason


def _decisions_until(run, ts: int) -> list[dict]:
    """Every decision stamped at or before `ts`, without ids (they embed the run id, which
    is derived from the whole input and so differs between the two runs)."""
    decided = []
    with EventLog(run.run_dir / "log", mode="r") as log:
        for topic in ("signals", "order.requests", "risk.decisions", "orders"):
            decode = codec(topic).decode
            for record in log.read(topic):
                if record.ts_event <= ts:
                    event = msgspec.to_builtins(decode(record.value))
                    decided.append({k: v for k, v in event.items() if not k.endswith("id")})
    return decided


def test_decide_when_future_bars_change_then_past_decisions_do_not(sample, demo_config, tmp_path):
    """No look-ahead: rewrite every bar after a cut-off; nothing stamped at or before the
    cut-off may change."""
    cut = int(np.quantile(sample.ts, 0.5))
    later = sample.ts > cut
    rng = np.random.default_rng(11)
    shock = np.where(later, rng.uniform(0.5, 1.5, len(sample)), 1.0)
    altered = BarFrame(ts=sample.ts, symbol_code=sample.symbol_code, symbols=sample.symbols,
                       open=sample.open * shock, high=sample.high * shock,
                       low=sample.low * shock, close=sample.close * shock,
                       volume=sample.volume)
    original = run_session(sample, demo_config, tmp_path / "a", audit=False)
    changed = run_session(altered, demo_config, tmp_path / "b", audit=False)
    before = _decisions_until(original, cut)
    assert before and before == _decisions_until(changed, cut)
    assert original.digests["fills"] != changed.digests["fills"]   # the future did change


def test_fill_when_market_order_then_price_is_the_next_bars_open(sample, tmp_path):
    config = with_strategies(load_config(None, environ={}), ["sma_cross"])
    run = run_session(sample, config, tmp_path, audit=False)
    opens = {(s, int(t)): o for s, t, o in zip(sample.symbol, sample.ts, sample.open)}
    times = {s: np.sort(sample.ts[sample.symbol == s]) for s in sample.symbols}
    with EventLog(run.run_dir / "log", mode="r") as log:
        orders = {o.client_order_id: o for o in map(codec("orders").decode,
                                                      (r.value for r in log.read("orders")))}
        fills = [codec("fills").decode(r.value) for r in log.read("fills")]
    assert fills
    for fill in fills:
        order = orders[fill.client_order_id]
        series = times[fill.symbol]
        next_bar = int(series[np.searchsorted(series, order.ts_event, side="right")])
        assert fill.ts_event == next_bar > order.ts_event
        assert float(fill.price) == pytest.approx(opens[(fill.symbol, next_bar)], abs=1e-4)
