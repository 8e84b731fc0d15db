"""`firetape control ...` to a live session (--run-dir: its control inbox). The same
commands to Kafka are tested on the real broker (tests/integration/test_kafka_*.py)."""
from __future__ import annotations

from click.testing import CliRunner

from connectors.alpaca.inbox import INBOX, read_commands
from firetape.control_cli import control
from firetape.runtime.session import write_meta
from schemas import (
    HaltReleased, KillSwitchEngaged, KillSwitchReleased, LimitChanged, StrategyDisabled,
)


def send(run_dir, *args):
    return CliRunner().invoke(control, [*args, "--run-dir", str(run_dir), "--operator", "ops"])


def test_kill_switch_when_sent_to_a_session_then_in_its_inbox_with_reason_and_operator(tmp_path):
    write_meta(tmp_path, {"run_id": "run1", "mode": "live"})
    engaged = send(tmp_path, "kill-switch", "engage", "--reason", "news")
    released = send(tmp_path, "kill-switch", "release", "--reason", "clear")
    assert engaged.exit_code == released.exit_code == 0
    assert "KillSwitchEngaged by ops posted to" in engaged.output
    commands, _ = read_commands(tmp_path)
    assert [(type(c), c.reason, c.operator, c.run_id, c.account) for c in commands] == [
        (KillSwitchEngaged, "news", "ops", "run1", ""),
        (KillSwitchReleased, "clear", "ops", "run1", "")]
    assert commands[0].event_id != commands[1].event_id
    assert commands[0].ts_event <= commands[1].ts_event


def test_set_limit_when_valid_then_posted_and_when_not_then_refused_and_nothing_sent(tmp_path):
    write_meta(tmp_path, {"run_id": "run1", "mode": "live"})
    assert send(tmp_path, "set-limit", "max_gross_exposure", "0.2").exit_code == 0
    unknown = send(tmp_path, "set-limit", "max_gross", "0.2")
    wrong = send(tmp_path, "set-limit", "max_gross_exposure", "lots")
    assert unknown.exit_code == wrong.exit_code == 2
    assert "max_gross: no such risk limit" in unknown.output
    assert "max_gross_exposure" in wrong.output
    (command,), _ = read_commands(tmp_path)
    assert isinstance(command, LimitChanged)
    assert (command.name, command.value) == ("max_gross_exposure", "0.2")


def test_release_halt_and_strategy_commands_when_sent_then_the_right_events(tmp_path):
    write_meta(tmp_path, {"run_id": "run1", "mode": "live"})
    assert send(tmp_path, "release-halt", "--reason", "reviewed").exit_code == 0
    assert send(tmp_path, "disable-strategy", "momentum").exit_code == 0
    commands, _ = read_commands(tmp_path)
    assert [type(c) for c in commands] == [HaltReleased, StrategyDisabled]
    assert commands[1].strategy == "momentum"


def test_command_when_session_finished_or_no_run_dir_then_clear_error_and_nothing_posted(
        tmp_path):
    write_meta(tmp_path, {"run_id": "run1", "mode": "live", "completed": True})
    finished = send(tmp_path, "kill-switch", "engage", "--reason", "x")
    assert finished.exit_code == 2 and "has finished" in finished.output
    assert not (tmp_path / INBOX).exists()
    missing = send(tmp_path / "nope", "kill-switch", "engage", "--reason", "x")
    assert missing.exit_code == 2 and "not a run directory" in missing.output


def test_command_when_the_run_is_not_a_live_session_then_refused_saying_why(tmp_path):
    write_meta(tmp_path, {"run_id": "run1", "mode": "backtest"})
    refused = send(tmp_path, "kill-switch", "engage", "--reason", "x")
    assert refused.exit_code == 2 and "only live sessions read commands" in refused.output
    assert not (tmp_path / INBOX).exists()
