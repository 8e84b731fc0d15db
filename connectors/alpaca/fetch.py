"""`firetape fetch alpaca`: historical bars into Parquet files `firetape backtest` reads.

The range is cut into chunks per symbol (a week of minute bars, a year of hourly or
daily ones: about one page each). Each chunk is one file in `out/`, written to a
temporary name and renamed when complete, so an interrupted fetch leaves only whole
files, and running the same command again skips every chunk already there. A chunk
without bars (a holiday week, an unknown symbol) leaves a hidden marker so it is not
asked for again either. The chunk that reaches into the future is always fetched
again, since it is not complete yet.

Files are long format (timestamp = bar close, symbol, open, high, low, close, volume),
flat in `out/` because `--data DIR` reads a directory's files, not its subdirectories.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from connectors.alpaca import wire
from connectors.alpaca.parse import bars_frame, rfc3339_ns
from connectors.alpaca.timeframes import Timeframe
from connectors.files.writer import write_bars


PARTIAL_DIR = ".partial"


class FetchError(ValueError):
    """A request that cannot be fetched as asked (dates, symbols); the message says why."""


@dataclass(frozen=True)
class Chunk:
    symbol: str
    start: datetime      # inclusive
    end: datetime        # exclusive

    def name(self, timeframe: Timeframe) -> str:
        return (f"{self.symbol}_{timeframe.text}_{self.start:%Y%m%d}_"
                f"{(self.end - timedelta(days=1)):%Y%m%d}")


@dataclass
class FetchReport:
    written: list[Path] = field(default_factory=list)
    skipped: int = 0
    empty: int = 0
    bars: int = 0
    symbols_without_bars: list[str] = field(default_factory=list)


def parse_symbols(text: str) -> list[str]:
    """"aapl, MSFT" -> ["AAPL", "MSFT"]; FetchError when there are none or they look wrong."""
    symbols = list(dict.fromkeys(s.strip().upper() for s in text.split(",") if s.strip()))
    if not symbols:
        raise FetchError("--symbols: give at least one symbol, e.g. AAPL,MSFT")
    bad = [s for s in symbols if not all(c.isalnum() or c in "./" for c in s)]
    if bad:
        raise FetchError(f"--symbols: not a symbol: {', '.join(bad)}")
    return symbols


def plan(symbols: list[str], start: date, end: date, timeframe: Timeframe) -> list[Chunk]:
    """Chunks covering [start, end] (whole UTC days, `end` included), per symbol."""
    if start > end:
        raise FetchError(f"--start {start} is after --end {end}")
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    stop = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    chunks = []
    for symbol in symbols:
        lower = first
        while lower < stop:
            upper = min(lower + timeframe.chunk(), stop)
            chunks.append(Chunk(symbol, lower, upper))
            lower = upper
    return chunks


BarsSource = Callable[[list[str], Timeframe, datetime, datetime], Iterable[wire.BarsPage]]


def fetch_bars(source: BarsSource, symbols: list[str], start: date, end: date,
               timeframe: Timeframe, out: Path, *, now: datetime,
               on_chunk: Callable[[Chunk, str], None] = lambda chunk, status: None) -> FetchReport:
    """Fetch every chunk not already in `out`; `on_chunk(chunk, status)` after each one
    ("written", "empty" or "skipped"). `now` decides which chunk is still incomplete."""
    out.mkdir(parents=True, exist_ok=True)
    report = FetchReport()
    found: dict[str, int] = dict.fromkeys(symbols, 0)
    for chunk in plan(symbols, start, end, timeframe):
        name = chunk.name(timeframe)
        target, marker = out / f"{name}.parquet", out / f".{name}.empty"
        complete = chunk.end <= now
        if complete and (target.exists() or marker.exists()):
            report.skipped += 1
            found[chunk.symbol] += 1   # fetched by an earlier run: not "without bars"
            on_chunk(chunk, "skipped")
            continue
        bars = _chunk_bars(source, chunk, timeframe)
        if not bars:
            if complete:
                marker.touch()
            report.empty += 1
            on_chunk(chunk, "empty")
            continue
        frame = bars_frame({chunk.symbol: bars}, timeframe, source=f"alpaca:{name}")
        # Written aside (a subdirectory `--data out/` does not read), then renamed: an
        # interrupted fetch leaves whole files only.
        partial = out / PARTIAL_DIR / target.name
        partial.parent.mkdir(exist_ok=True)
        write_bars(frame, partial)
        partial.replace(target)
        marker.unlink(missing_ok=True)
        report.written.append(target)
        report.bars += len(frame)
        found[chunk.symbol] += len(frame)
        on_chunk(chunk, "written")
    report.symbols_without_bars = [s for s, n in found.items() if n == 0]
    return report


def _chunk_bars(source: BarsSource, chunk: Chunk, timeframe: Timeframe) -> list[wire.HistoricalBar]:
    low, high = _ns(chunk.start), _ns(chunk.end)
    bars: list[wire.HistoricalBar] = []
    for page in source([chunk.symbol], timeframe, chunk.start, chunk.end):
        for bar in (page.bars or {}).get(chunk.symbol, []):
            # Alpaca's `end` is inclusive: keep [start, end) so chunks never overlap.
            if low <= rfc3339_ns(bar.t) < high:
                bars.append(bar)
    return bars


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000
