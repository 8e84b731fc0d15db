"""`firetape run --feed alpaca ...`: every refusal before any request is one clear line
and exit code 2 (no network is touched by these)."""
from __future__ import annotations

from click.testing import CliRunner

from firetape.cli import main

NO_KEYS = {"APCA_API_KEY_ID": "", "APCA_API_SECRET_KEY": ""}
LIVE_KEYS = {"APCA_API_KEY_ID": "AKTESTKEYID0000000001", "APCA_API_SECRET_KEY": "x"}


def run(*args: str, env: dict | None = None):
    return CliRunner(env=env or NO_KEYS).invoke(main, ["run", *args])


def test_run_when_live_broker_without_live_flag_then_refused_before_any_request():
    result = run("--feed", "alpaca", "--broker", "alpaca-live", "--symbols", "AAPL",
                 env=LIVE_KEYS)
    assert result.exit_code == 2
    assert "needs the explicit --live flag" in result.output


def test_run_when_live_flag_but_config_says_paper_then_refused_naming_the_key(tmp_path):
    result = run("--feed", "alpaca", "--broker", "alpaca-live", "--live", "--symbols", "AAPL",
                 "--runs", str(tmp_path), env=LIVE_KEYS)
    assert result.exit_code == 2
    assert "alpaca.account_type" in result.output


def test_run_when_alpaca_feed_without_symbols_then_usage_error():
    result = run("--feed", "alpaca", "--broker", "alpaca-paper")
    assert result.exit_code == 2 and "--symbols" in result.output


def test_run_when_alpaca_feed_with_paper_broker_then_usage_error_says_why():
    result = run("--feed", "alpaca", "--symbols", "AAPL")
    assert result.exit_code == 2 and "--broker alpaca-paper" in result.output


def test_run_when_alpaca_broker_with_file_data_then_usage_error():
    result = run("--broker", "alpaca-paper", "--data", "bars.csv")
    assert result.exit_code == 2 and "needs --feed alpaca" in result.output


def test_run_when_keys_missing_then_error_names_the_variable(tmp_path):
    result = run("--feed", "alpaca", "--broker", "alpaca-paper", "--symbols", "AAPL",
                 "--runs", str(tmp_path))
    assert result.exit_code == 2 and "APCA_API_KEY_ID" in result.output


def test_run_when_file_feed_without_data_then_missing_data_option():
    result = run()
    assert result.exit_code == 2 and "Missing option '--data'" in result.output


def test_run_when_carry_from_and_fresh_together_then_usage_error():
    result = run("--feed", "alpaca", "--broker", "alpaca-paper", "--symbols", "AAPL",
                 "--carry-from", "runs/x", "--fresh")
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_run_when_file_feed_with_fresh_then_usage_error_says_they_are_for_alpaca(tmp_path):
    result = run("--data", str(tmp_path), "--fresh")
    assert result.exit_code == 2 and "--feed alpaca" in result.output
