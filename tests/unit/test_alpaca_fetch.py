"""`firetape fetch alpaca` against recorded bars responses: files, paging, resume, errors."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import responses
from click.testing import CliRunner
from responses import matchers

from connectors.alpaca.cli import fetch
from connectors.alpaca.fetch import FetchError, plan
from connectors.alpaca.parse import rfc3339_ns
from connectors.alpaca.timeframes import parse_timeframe
from connectors.files import load_bars
from tests.fixtures.alpaca.recorded import DATA, SECRET, environ, load, text

BARS = f"{DATA}/stocks/bars"
ARGS = ["alpaca", "--symbols", "AAPL,MSFT", "--start", "2024-01-02", "--end", "2024-01-03",
        "--timeframe", "1Min", "--quiet"]


def serve(symbol: str, name: str, page_token: str | None = None, status: int = 200):
    params = {"symbols": symbol, "timeframe": "1Min", "feed": "iex"}
    if page_token:
        params["page_token"] = page_token
    responses.get(BARS, body=text(name), status=status,
                  match=[matchers.query_param_matcher(params, strict_match=False)])


def run(args, **env):
    return CliRunner().invoke(fetch, args, env={**environ(), **env}, catch_exceptions=False)


def serve_both():
    token = load("bars_AAPL_1Min_page1")["next_page_token"]
    # Registered first, so the request that carries the token is matched by it.
    serve("AAPL", "bars_AAPL_1Min_page2", page_token=token)
    serve("AAPL", "bars_AAPL_1Min_page1")
    serve("MSFT", "bars_MSFT_1Min")


@responses.activate
def test_fetch_when_two_symbols_then_backtest_format_files_with_close_times(tmp_path):
    serve_both()
    result = run([*ARGS, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wrote 7 bars in 2 file(s)" in result.output
    files = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert files == ["AAPL_1Min_20240102_20240103.parquet", "MSFT_1Min_20240102_20240103.parquet"]
    frame = load_bars(tmp_path)          # exactly what `firetape backtest --data` does
    assert frame.symbols == ("AAPL", "MSFT") and len(frame) == 7
    assert int(frame.ts[0]) == rfc3339_ns("2024-01-02T14:31:00Z")   # 14:30 bar closes 14:31
    assert SECRET not in result.output


@responses.activate
def test_fetch_when_run_again_then_skips_every_chunk_without_a_request(tmp_path):
    serve_both()
    assert run([*ARGS, "--out", str(tmp_path)]).exit_code == 0
    requests_before = len(responses.calls)
    again = run([*ARGS, "--out", str(tmp_path)])
    assert again.exit_code == 0 and "2 chunk(s) already there" in again.output
    assert len(responses.calls) == requests_before


@responses.activate
def test_fetch_when_interrupted_by_a_refusal_then_keeps_whole_files_and_resumes(tmp_path):
    token = load("bars_AAPL_1Min_page1")["next_page_token"]
    serve("AAPL", "bars_AAPL_1Min_page2", page_token=token)
    serve("AAPL", "bars_AAPL_1Min_page1")
    serve("MSFT", "error_sip_subscription", status=403)
    failed = run([*ARGS, "--out", str(tmp_path)])
    assert failed.exit_code == 2
    assert "subscription does not permit" in failed.output and "resume" in failed.output
    assert [p.name for p in tmp_path.glob("*.parquet")] == ["AAPL_1Min_20240102_20240103.parquet"]
    responses.reset()
    serve("MSFT", "bars_MSFT_1Min")
    resumed = run([*ARGS, "--out", str(tmp_path)])
    assert resumed.exit_code == 0 and "1 chunk(s) already there" in resumed.output
    assert [c.request.params["symbols"] for c in responses.calls] == ["MSFT"]


@responses.activate
def test_fetch_when_symbol_unknown_then_warns_and_marks_the_chunk(tmp_path):
    serve("ZZZZ", "bars_empty")
    result = run(["alpaca", "--symbols", "zzzz", "--start", "2024-01-02", "--end",
                  "2024-01-03", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0
    assert "no bars for ZZZZ" in result.output and "unknown symbol" in result.output
    assert list(tmp_path.glob("*.parquet")) == [] and list(tmp_path.glob(".*.empty"))


@pytest.mark.parametrize("args, message", [
    (["--start", "2024-02-01", "--end", "2024-01-01"], "--start 2024-02-01 is after --end"),
    (["--start", "2024-01-01", "--end", "2024-01-02", "--timeframe", "90Min"],
     "is not one Alpaca offers"),
])
def test_fetch_when_bad_range_or_timeframe_then_clear_error_and_no_request(args, message, tmp_path):
    with responses.RequestsMock() as mock:
        result = run(["alpaca", "--symbols", "AAPL", "--out", str(tmp_path), *args])
        assert len(mock.calls) == 0
    assert result.exit_code == 2 and message in result.output


def test_fetch_when_key_missing_then_names_the_variable(tmp_path):
    result = CliRunner().invoke(fetch, [*ARGS, "--out", str(tmp_path)],
                                env={"APCA_API_KEY_ID": None, "APCA_API_SECRET_KEY": None})
    assert result.exit_code == 2 and "APCA_API_KEY_ID is not set" in result.output


def test_plan_when_minute_bars_over_ten_days_then_weekly_chunks_per_symbol():
    chunks = plan(["AAPL"], date(2024, 1, 1), date(2024, 1, 10), parse_timeframe("1Min"))
    assert [(c.start.day, c.end.day) for c in chunks] == [(1, 8), (8, 11)]
    assert chunks[0].start == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(FetchError, match="after"):
        plan(["AAPL"], date(2024, 1, 2), date(2024, 1, 1), parse_timeframe("1Min"))
