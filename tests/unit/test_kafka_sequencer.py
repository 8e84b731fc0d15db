"""The Kafka runtime's pure parts: the watermark merge, the per-symbol strategy binding,
the account pipeline over sequenced inputs, and the wire helpers. No broker."""
from __future__ import annotations

import random

import msgspec

from firetape.config import load_config
from firetape.kafka.account_pipeline import AccountPipeline, Outbox
from firetape.kafka.sequencer import Merger
from firetape.kafka.strategy_binding import StrategyEvaluator
from firetape.kafka.wire import Evaluation, Sequenced, Watermark, evaluation_codec, event_type
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.pipeline import build_stages
from tests.factories import DAY, T0, bar
from topics.codec import codec
from topics.partitioner import partition_for

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def _feed(times: int):
    """Bars as the publisher sends them, with md.bars offsets and one watermark per time."""
    offsets: dict[int, int] = {}
    bars, marks = [], []
    for i in range(times):
        ts = T0 + i * DAY
        written: dict[int, int] = {}
        for symbol in sorted(SYMBOLS, key=lambda s: (partition_for(s.encode(), 8), s)):
            p = partition_for(symbol.encode(), 8)
            offsets[p] = offsets.get(p, -1) + 1
            written[p] = offsets[p]
            bars.append((p, offsets[p], bar(symbol, ts, close=100.0 + i)))
        marks.append(Watermark(ts_event=ts, run_id="r", offsets=written))
    return bars, marks


def _evaluation(p, offset, b):
    return Evaluation(source_partition=p, source_offset=offset, bar=b)


def test_release_when_partitions_arrive_shuffled_then_order_is_ts_partition_offset():
    bars, marks = _feed(5)
    merger, released = Merger(), []
    by_partition: dict[int, list] = {}
    for p, offset, b in bars:
        by_partition.setdefault(p, []).append((p, offset, b))
    # Within a partition Kafka keeps order; only the interleaving across partitions varies.
    rng = random.Random(3)
    queues = [list(q) for q in by_partition.values()] + [list(enumerate(marks))]
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        item = queue.pop(0)
        if isinstance(item[1], Watermark):
            merger.add_watermark(item[1], item[0])
        else:
            merger.add_evaluation(_evaluation(*item), item[0], item[1])
        released.extend(merger.release())
    got = [(r.evaluation.bar.ts_event, r.evaluation.source_partition, r.evaluation.source_offset)
           for r in released]
    assert got == sorted((b.ts_event, p, o) for p, o, b in bars)


def test_release_when_watermark_not_yet_covered_then_nothing_is_released():
    bars, marks = _feed(1)
    merger = Merger()
    merger.add_watermark(marks[0], 0)
    for p, offset, b in bars[:-1]:
        merger.add_evaluation(_evaluation(p, offset, b), p, offset)
    assert merger.release() == []
    p, offset, b = bars[-1]
    merger.add_evaluation(_evaluation(p, offset, b), p, offset)
    assert len(merger.release()) == len(bars)


def test_add_evaluation_when_bar_redelivered_then_dropped_as_duplicate():
    bars, marks = _feed(2)
    merger = Merger()
    for p, offset, b in bars:
        merger.add_evaluation(_evaluation(p, offset, b), p, offset)
        merger.add_evaluation(_evaluation(p, offset, b), p, offset + 100)
    merger.add_watermark(marks[0], 0)
    first = merger.release()
    p, offset, b = bars[0]
    merger.add_evaluation(_evaluation(p, offset, b), p, offset + 200)   # after its release
    merger.add_watermark(marks[1], 1)
    assert len(first) + len(merger.release()) == len(bars)
    assert merger.duplicates == len(bars) + 1


def test_apply_when_record_undecodable_then_dead_letter_and_coverage_only_evaluation():
    evaluator = StrategyEvaluator(load_config(None, environ={}), "md.bars", "run")
    outcome = evaluator.apply(b"\xffnot json", 3, 9)
    assert outcome.dead_letter.reason.startswith("undecodable")
    assert outcome.dead_letter.payload == b"\xffnot json"
    evaluation = evaluation_codec[1](outcome.evaluation)
    assert (evaluation.source_partition, evaluation.source_offset, evaluation.bar) == (3, 9, None)


def test_apply_when_partition_rebuilt_from_its_records_then_same_evaluations_as_uninterrupted():
    from connectors.synthetic import generate_bars
    from firetape.runtime.feed import bar_events, in_replay_order

    config = load_config("config/demo.toml", environ={})
    frame = in_replay_order(generate_bars(2, 120, seed=7, interval="1d"))
    values = [codec("md.bars").encode(e) for e in bar_events(frame, "run")]
    values.insert(5, b"\xffpoison")
    steady = StrategyEvaluator(config, "md.bars", "")
    expected = [steady.apply(v, 0, offset).evaluation for offset, v in enumerate(values)]
    assert any(evaluation_codec[1](e).events for e in expected)

    restarted = StrategyEvaluator(config, "md.bars", "")     # a new worker at offset 60
    assert not restarted.needs_rebuild(0, 0) and restarted.needs_rebuild(0, 60)
    restarted.rebuild(0, values[:60], 60)
    assert not restarted.needs_rebuild(0, 60)
    got = [restarted.apply(v, 0, offset).evaluation for offset, v in enumerate(values)
           if offset >= 60]
    assert got == expected[60:]
    assert restarted.needs_rebuild(0, 61)                     # a redelivery: rebuild again
    restarted.rebuild(0, values[:61], 61)
    assert restarted.apply(values[61], 0, 61).evaluation == expected[61]


def test_rebuild_when_restored_from_a_snapshot_then_same_evaluations_as_uninterrupted():
    from connectors.synthetic import generate_bars
    from firetape.runtime.feed import bar_events, in_replay_order

    config = load_config("config/demo.toml", environ={})
    frame = in_replay_order(generate_bars(2, 120, seed=7, interval="1d"))
    values = [codec("md.bars").encode(e) for e in bar_events(frame, "run")]
    steady = StrategyEvaluator(config, "md.bars", "")
    expected, snapshot = [], None
    for offset, value in enumerate(values):
        expected.append(steady.apply(value, 0, offset).evaluation)
        if offset + 1 == 50:
            snapshot = steady.snapshot(0)
    assert any(evaluation_codec[1](e).events for e in expected[150:])

    restarted = StrategyEvaluator(config, "md.bars", "")     # a new worker at offset 150
    assert restarted.restore(0, snapshot) == 50
    restarted.rebuild(0, values[50:150], 150, start=50)
    got = [restarted.apply(v, 0, offset).evaluation for offset, v in enumerate(values)
           if offset >= 150]
    assert got == expected[150:]


def test_restore_when_snapshot_from_other_strategy_config_or_unreadable_then_ignored():
    config = load_config("config/demo.toml", environ={})
    evaluator = StrategyEvaluator(config, "md.bars", "")
    evaluator.apply(codec("md.bars").encode(bar("AAA", T0, close=100.0)), 0, 0)
    snapshot = evaluator.snapshot(0)
    other = load_config("config/demo.toml", environ={})
    first = other.run.strategies[0]
    other.strategies[first] = {**other.strategies.get(first, {}), "unused_marker": 1}
    assert StrategyEvaluator(other, "md.bars", "").restore(0, snapshot) is None
    fresh = StrategyEvaluator(config, "md.bars", "")
    assert fresh.restore(0, b"not a pickle") is None
    assert fresh.needs_rebuild(0, 1)                       # nothing was restored


def test_apply_when_sequenced_bars_and_signals_then_same_events_as_embedded_bus():
    from connectors.synthetic import generate_bars
    from firetape.runtime.feed import bar_events, in_replay_order

    config = load_config("config/demo.toml", environ={})
    frame = in_replay_order(generate_bars(3, 120, seed=5, interval="1d"))
    events = list(bar_events(frame, "run"))

    log = Outbox()      # as the embedded bus's log: it keeps every output record
    bus = EmbeddedBus(build_stages(config, "run"), log, "run")
    for event in events:
        bus.publish(event)
    expected = [r.value for r in log.take() if r.topic in ("orders", "fills", "risk.decisions")]
    evaluator = StrategyEvaluator(config, "md.bars", "")
    pipeline = AccountPipeline(config)
    got = []
    for offset, event in enumerate(events):
        partition = partition_for(event.symbol.encode(), 8)
        outcome = evaluator.apply(codec("md.bars").encode(event), partition, offset)
        item = Sequenced(account="paper", source_topic="md.bars", source_partition=partition,
                         source_offset=offset, input_offset=offset,
                         evaluation=evaluation_codec[1](outcome.evaluation))
        got.extend(r.value for r in pipeline.apply(item)
                   if r.topic in ("orders", "fills", "risk.decisions"))
    assert expected and got == expected


def test_event_type_when_encoded_event_then_read_from_first_field_without_decoding():
    value = codec("md.bars").encode(bar())
    assert event_type(value) == "Bar"
    assert event_type(b"\x00garbage") == ""
    assert msgspec.json.decode(value)["type"] == "Bar"
