"""The Alpaca command attached to `firetape` by firetape.cli.PLUGGED_COMMANDS:

    firetape fetch alpaca --symbols AAPL,MSFT --start 2024-01-01 --end 2024-06-30 \
        --timeframe 1Min --out data/

Thin shells: each expected failure (missing key, bad dates, a timeframe Alpaca does not
offer, a refusal by Alpaca) ends with one clear line and exit code 2, never a traceback.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

# soft_wrap: a message is one line, whatever the terminal width (greppable, testable).
errors = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
DATA_URL_VAR = "APCA_API_DATA_URL"   # Alpaca's own variable for the market-data base URL


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {message}")
    raise SystemExit(2)


@click.group()
def fetch() -> None:
    """Download historical market data into files `firetape backtest` reads."""


@fetch.command("alpaca")
@click.option("--symbols", required=True, help="Comma-separated, e.g. AAPL,MSFT.")
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="First day (UTC), YYYY-MM-DD.")
@click.option("--end", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Last day (UTC, included), YYYY-MM-DD.")
@click.option("--timeframe", default="1Min", show_default=True,
              help="Alpaca's spelling: 1-59Min, 1-23Hour or 1Day.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the Parquet files (created if missing).")
@click.option("--feed", default="iex", show_default=True, type=click.Choice(["iex", "sip"]),
              help="iex is free; sip needs a paid subscription.")
@click.option("--adjustment", default="raw", show_default=True,
              type=click.Choice(["raw", "split", "dividend", "all"]))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fetch_alpaca(symbols, start, end, timeframe, out_dir, feed, adjustment, quiet):
    """Historical bars from Alpaca, one Parquet file per symbol and chunk; re-running the
    same command resumes where it stopped. Keys: APCA_API_KEY_ID, APCA_API_SECRET_KEY."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from connectors.alpaca.credentials import MissingCredentialError, load_credentials
    from connectors.alpaca.errors import AlpacaError
    from connectors.alpaca.fetch import FetchError, fetch_bars, parse_symbols, plan
    from connectors.alpaca.history import AlpacaHistory
    from connectors.alpaca.timeframes import TimeframeError, parse_timeframe

    try:
        frame_of = parse_timeframe(timeframe)
        names = parse_symbols(symbols)
        chunks = plan(names, start.date(), end.date(), frame_of)
        credentials = load_credentials()
    except (TimeframeError, FetchError, MissingCredentialError) as exc:
        _fail(str(exc))
    history = AlpacaHistory(credentials, base_url=os.environ.get(DATA_URL_VAR, ""))

    def source(batch, tf, lower, upper):
        # Alpaca's end is inclusive; the chunk's is not, and fetch filters the last bar.
        return history.bars(batch, tf, lower, upper, feed=feed, adjustment=adjustment)

    progress = Progress(TextColumn("[bold]fetch[/] {task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("chunks"), console=errors,
                        disable=quiet)
    try:
        with progress:
            task = progress.add_task(",".join(names), total=len(chunks))
            report = fetch_bars(source, names, start.date(), end.date(), frame_of, Path(out_dir),
                                now=datetime.now(UTC),
                                on_chunk=lambda chunk, status: progress.advance(task))
    except AlpacaError as exc:
        _fail(f"{exc} (files fetched so far are kept; run the same command to resume)")
    for symbol in report.symbols_without_bars:
        errors.print(f"[yellow]warning:[/] no bars for {symbol} from {start:%Y-%m-%d} to "
                     f"{end:%Y-%m-%d}: unknown symbol, or no trading in that range")
    out.print(f"wrote {report.bars:,} bars in {len(report.written)} file(s) to {out_dir}; "
                      f"{report.skipped} chunk(s) already there, {report.empty} without bars")
