"""Strategy commands in the Kafka strategy binding: a StrategyDisabled / StrategyEnabled
takes effect on an md.bars partition at the offset its marker names, and a restart, a
rebuild from a snapshot or a new owner of the partition applies it at exactly that point.
No broker: the markers are handed to the evaluator as the agent would."""
from __future__ import annotations

import pickle

import pytest

from connectors.synthetic import generate_bars
from firetape.config import load_config
from firetape.kafka.strategy_binding import StrategyEvaluator
from firetape.kafka.strategy_control import CommandApplied, marker_codec
from firetape.runtime.feed import bar_events, in_replay_order
from firetape.runtime.pipeline import build_stages
from schemas import SignalGenerated, StrategyDisabled, StrategyEnabled
from topics.codec import codec

DISABLE_AT, ENABLE_AT = 100, 260       # md.bars offsets of partition 0 (2 symbols x 200 days)


def _command(kind, strategy: str, n: int):
    return kind(event_id=f"op-{n}", ts_event=n, ts_init=n, correlation_id=f"op-{n}",
                causation_id="", producer="operator", run_id="ops", strategy=strategy)


def _marker(command, control_offset: int, offset: int, partition: int = 0) -> CommandApplied:
    return CommandApplied(source_partition=partition, source_offset=offset,
                          control_offset=control_offset, command=command)


@pytest.fixture(scope="module")
def config():
    return load_config("config/demo.toml", environ={})


@pytest.fixture(scope="module")
def values():
    frame = in_replay_order(generate_bars(2, 200, seed=7, interval="1d"))
    return [codec("md.bars").encode(e) for e in bar_events(frame, "run")]


def _busiest_strategy(config, values) -> str:
    """The strategy with the most signals between the two command points when nothing is
    disabled (so disabling it there must change the output)."""
    evaluator = StrategyEvaluator(config, "md.bars", "")
    counts: dict[str, int] = {}
    for offset, value in enumerate(values):
        for event in evaluator.apply(value, 0, offset).signals:
            if DISABLE_AT <= offset < ENABLE_AT and isinstance(event, SignalGenerated):
                counts[event.strategy] = counts.get(event.strategy, 0) + 1
    return max(sorted(counts), key=counts.get)


def _embedded(config, values, name: str) -> list[bytes]:
    """The embedded runtime's strategy stage: one stage, the commands between bars."""
    stage = next(s for s in build_stages(config, "run") if s.name == "strategy")
    decode, encode = codec("md.bars").decode, codec("signals").encode
    out = []
    for offset, value in enumerate(values):
        if offset == DISABLE_AT:
            stage.on_disabled(_command(StrategyDisabled, name, 1))
        if offset == ENABLE_AT:
            stage.on_enabled(_command(StrategyEnabled, name, 2))
        out.extend(encode(e) for e in stage.on_bar(decode(value)))
    return out


def _markers(name: str) -> list[CommandApplied]:
    return [_marker(_command(StrategyDisabled, name, 1), 3, DISABLE_AT),
            _marker(_command(StrategyEnabled, name, 2), 7, ENABLE_AT)]


def _run(evaluator, values, start: int = 0) -> list[bytes]:
    encode = codec("signals").encode
    return [encode(e) for offset, value in enumerate(values) if offset >= start
            for e in evaluator.apply(value, 0, offset).signals]


def test_apply_when_strategy_disabled_then_enabled_at_marked_offsets_then_equals_embedded_stage(
        config, values):
    name = _busiest_strategy(config, values)
    evaluator = StrategyEvaluator(config, "md.bars", "")
    for marker in _markers(name):
        assert evaluator.add_marker(marker)
    got = _run(evaluator, values)
    assert got == _embedded(config, values, name)
    assert got != _run(StrategyEvaluator(config, "md.bars", ""), values)  # it mattered


def test_rebuild_when_restarted_before_or_after_command_point_then_applied_at_same_offset(
        config, values):
    name = _busiest_strategy(config, values)
    expected = _embedded(config, values, name)
    encode = codec("signals").encode
    for restart_at in (DISABLE_AT - 30, DISABLE_AT, DISABLE_AT + 1, ENABLE_AT + 5):
        steady = StrategyEvaluator(config, "md.bars", "")
        for marker in _markers(name):
            steady.add_marker(marker)
        before = [encode(e) for o, v in enumerate(values[:restart_at])
                  for e in steady.apply(v, 0, o).signals]
        restarted = StrategyEvaluator(config, "md.bars", "")
        for marker in _markers(name):                      # read from strategy.control
            restarted.add_marker(marker)
        restarted.rebuild(0, list(enumerate(values[:restart_at])), restart_at)
        assert before + _run(restarted, values, restart_at) == expected, restart_at


def test_restore_when_snapshot_taken_while_disabled_then_disabled_set_carried_to_new_symbols(
        config, values):
    name = _busiest_strategy(config, values)
    steady = StrategyEvaluator(config, "md.bars", "")
    for marker in _markers(name):
        steady.add_marker(marker)
    for offset, value in enumerate(values[:DISABLE_AT + 20]):
        steady.apply(value, 0, offset)
    snapshot = steady.snapshot(0)
    fingerprint, next_offset, _, commands, control_offset = pickle.loads(snapshot)
    assert (next_offset, control_offset) == (DISABLE_AT + 20, 3)
    assert [type(c) for c in commands] == [StrategyDisabled]

    # A symbol the partition has not seen before the snapshot: its stage is made after
    # the command and must not run the disabled strategy either.
    other = in_replay_order(generate_bars(3, 200, seed=11, interval="1d"))
    newcomer = [codec("md.bars").encode(e) for e in bar_events(other, "run")
                if e.symbol not in {codec("md.bars").decode(v).symbol for v in values[:2]}]
    restarted = StrategyEvaluator(config, "md.bars", "")
    assert restarted.restore(0, snapshot) == DISABLE_AT + 20
    for marker in _markers(name):
        restarted.add_marker(marker)
    tail = newcomer[DISABLE_AT:DISABLE_AT + 100]
    strategies = {codec("signals").decode(codec("signals").encode(e)).strategy
                  for o, v in enumerate(tail, DISABLE_AT + 20)
                  for e in restarted.apply(v, 0, o).signals}
    assert strategies and name not in strategies


def test_due_commands_when_partition_never_owned_then_all_due_at_its_first_record(config,
                                                                                  values):
    evaluator = StrategyEvaluator(config, "md.bars", "")
    commands = [(3, _command(StrategyDisabled, "momentum", 1)),
                (7, _command(StrategyEnabled, "momentum", 2)),
                (9, _command(StrategyDisabled, "sma_cross", 3))]
    evaluator.add_marker(_marker(commands[0][1], 3, 40, partition=2))
    evaluator.rebuild(2, [], 0)                      # a worker's first sight of it
    assert [o for o, _ in evaluator.due_commands(2, commands)] == [7, 9]
    evaluator.rebuild(5, [], 0)
    assert [o for o, _ in evaluator.due_commands(5, commands)] == [3, 7, 9]


def test_due_commands_when_not_a_strategy_command_then_ignored(config):
    from schemas import KillSwitchEngaged

    evaluator = StrategyEvaluator(config, "md.bars", "")
    kill = KillSwitchEngaged(event_id="k", ts_event=0, ts_init=0, correlation_id="",
                             causation_id="", producer="operator", run_id="ops",
                             account="paper", reason="test")
    assert evaluator.due_commands(0, [(0, kill)]) == []
    assert set(evaluator.command_types) == {StrategyDisabled, StrategyEnabled}


def test_add_marker_when_earlier_marker_for_same_command_then_first_stands_and_state_dropped(
        config, values):
    name = _busiest_strategy(config, values)
    evaluator = StrategyEvaluator(config, "md.bars", "")
    for offset, value in enumerate(values[:DISABLE_AT + 10]):
        evaluator.apply(value, 0, offset)
    first = _marker(_command(StrategyDisabled, name, 1), 3, DISABLE_AT)
    late = _marker(_command(StrategyDisabled, name, 1), 3, DISABLE_AT + 10)
    assert evaluator.add_marker(first)           # this state passed its point without it
    assert not evaluator.has_state(0)            # so the next record rebuilds
    assert not evaluator.add_marker(late)
    assert evaluator.marker(0, 3) == first


def test_marker_codec_when_round_trip_then_same_marker():
    marker = _marker(_command(StrategyEnabled, "momentum", 4), 12, 345, partition=6)
    assert marker_codec[1](marker_codec[0](marker)) == marker


def test_restore_when_snapshot_of_older_format_then_ignored(config, values):
    evaluator = StrategyEvaluator(config, "md.bars", "")
    evaluator.apply(values[0], 0, 0)
    old = pickle.dumps((evaluator.fingerprint, 1, {}))     # before commands were carried
    assert StrategyEvaluator(config, "md.bars", "").restore(0, old) is None
