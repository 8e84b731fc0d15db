"""The CLI as a user runs it: subprocesses on real files and real run directories."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "bars.csv"
FIRETAPE = [sys.executable, "-m", "firetape.cli"]


def firetape(*args, check=True, env=None, cwd=None) -> subprocess.CompletedProcess:
    result = subprocess.run([*FIRETAPE, *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd,
                            timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One backtest of the bundled sample, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("runs")
    summary = root / "summary.json"
    result = firetape("backtest", "--data", SAMPLE, "--strategy", "sma_cross,momentum",
                      "--runs", root, "--json", summary)
    return json.loads(summary.read_text()), result


def test_backtest_when_sample_given_then_report_json_chart_and_digests(sample_run):
    summary, result = sample_run
    for key in ("run_id", "run_dir", "bars", "signals", "orders", "fills", "round_trips",
                "initial_equity", "final_equity", "metrics", "digests", "bars_per_second"):
        assert key in summary, key
    assert summary["bars"] == 3024
    assert summary["orders"] > 0 and summary["fills"] > 0
    assert set(summary["digests"]) >= {"md.bars", "signals", "order.requests",
                                       "risk.decisions", "orders", "fills", "portfolio"}
    assert all(len(d) == 64 for d in summary["digests"].values())
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run_dir / "run.json").read_text())["completed"] is True
    assert summary["run_id"] in result.stdout and "Sharpe" in result.stdout


def test_replay_when_run_recorded_then_every_topic_matches(sample_run):
    summary, _ = sample_run
    result = firetape("replay", summary["run_dir"])
    assert "identical" in result.stdout
    assert "NO" not in result.stdout


def test_replay_when_output_tampered_then_exit_non_zero(sample_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(summary_dir := Path(sample_run[0]["run_dir"]), copy)
    meta = json.loads((copy / "run.json").read_text())
    meta["config"]["execution"]["slippage_bps"] = 7.0   # the recorded config no longer matches
    (copy / "run.json").write_text(json.dumps(meta))
    result = firetape("replay", copy, check=False)
    assert result.returncode == 1
    assert "differs" in result.stderr
    assert summary_dir.exists()


def test_backtest_when_run_twice_then_same_run_id_and_digests(sample_run, tmp_path):
    summary, _ = sample_run
    again = tmp_path / "again.json"
    firetape("backtest", "--data", SAMPLE, "--strategy", "sma_cross,momentum", "--runs",
             tmp_path, "--json", again, "--quiet")
    second = json.loads(again.read_text())
    assert second["run_id"] == summary["run_id"]
    assert second["digests"] == summary["digests"]
    assert second["run_dir"] != summary["run_dir"]


def test_log_inspect_when_topic_and_tail_then_last_events_readable(sample_run):
    run_dir = sample_run[0]["run_dir"]
    overview = firetape("log", "inspect", run_dir)
    assert "md.bars" in overview.stdout and "3,024" in overview.stdout
    tail = firetape("log", "inspect", run_dir, "--topic", "fills", "--tail", "3")
    lines = [line for line in tail.stdout.splitlines() if "FillExecuted" in line]
    assert len(lines) == 3
    as_json = firetape("log", "inspect", run_dir, "--topic", "fills", "--tail", "1", "--json")
    assert json.loads(as_json.stdout)["type"] == "FillExecuted"


def test_log_inspect_when_topic_unknown_then_clear_error(sample_run):
    result = firetape("log", "inspect", sample_run[0]["run_dir"], "--topic", "nope", check=False)
    assert result.returncode == 2
    assert "unknown topic 'nope'" in result.stderr and "Traceback" not in result.stderr


def test_topics_when_listed_then_registry_printed():
    result = firetape("topics")
    for name in ("md.bars", "signals", "order.requests", "risk.decisions", "orders",
                 "order.updates", "fills", "portfolio", "control", "dlq"):
        assert name in result.stdout


def test_backtest_when_csv_has_bad_row_then_names_file_row_and_reason(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,symbol,open,high,low,close,volume\n"
                   "2024-01-02,AAA,10,11,9,10.5,100\n"
                   "2024-01-03,AAA,10,9,11,10.5,100\n")
    result = firetape("backtest", "--data", bad, "--runs", tmp_path, check=False)
    assert result.returncode == 2
    assert "bad.csv" in result.stderr and "line 3" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.glob("*/run.json"))   # nothing was run


def test_backtest_when_config_has_unknown_key_then_start_up_fails_naming_it(tmp_path):
    config = tmp_path / "firetape.toml"
    config.write_text("[risk]\nmax_drawdonw = 0.1\n")
    result = firetape("backtest", "--data", SAMPLE, "--config", config, "--runs", tmp_path,
                      check=False)
    assert result.returncode == 2
    assert "risk.max_drawdonw: unknown key" in result.stderr


def test_backtest_when_strategy_unknown_then_error_lists_builtins(tmp_path):
    result = firetape("backtest", "--data", SAMPLE, "--strategy", "turtles", "--runs", tmp_path,
                      check=False)
    assert result.returncode == 2
    assert "turtles" in result.stderr and "sma_cross" in result.stderr


def test_backtest_when_strategy_in_user_file_then_it_runs(tmp_path):
    plugin = tmp_path / "always_long.py"
    plugin.write_text(
        "import msgspec\n"
        "class Params(msgspec.Struct, forbid_unknown_fields=True, frozen=True):\n"
        "    pass\n"
        "class AlwaysLong:\n"
        "    name = 'always_long'\n"
        "    Params = Params\n"
        "    def __init__(self, params):\n"
        "        self.seen = 0\n"
        "    def on_bar(self, bar):\n"
        "        self.seen += 1\n"
        "        # after 30 bars, so that risk has the return history VaR needs\n"
        "        return (1, 1.0) if self.seen == 30 else None\n")
    summary = tmp_path / "s.json"
    firetape("backtest", "--data", SAMPLE, "--strategy", f"{plugin}:AlwaysLong", "--runs",
             tmp_path, "--json", summary, "--quiet")
    data = json.loads(summary.read_text())
    assert data["signals"] == 6          # one per symbol of the sample
    assert data["fills"] >= 1


def test_run_when_interrupted_then_log_is_consistent_and_replays(tmp_path):
    data = tmp_path / "minutes.csv"
    firetape("generate", "--symbols", "3", "--bars", "390", "--out", data)
    proc = subprocess.Popen([*FIRETAPE, "run", "--data", str(data), "--speed", "600x",
                             "--runs", str(tmp_path), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by SIGINT" in err
    (run_dir,) = [p.parent for p in tmp_path.glob("*/run.json")]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["completed"] is False
    assert 0 < meta["bars_processed"] < 3 * 390
    replay = firetape("replay", run_dir)
    assert "identical" in replay.stdout
