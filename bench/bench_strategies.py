"""Throughput of the strategy stage: bars/s for sma_cross over synthetic closes.

Run:  .venv/bin/python bench/bench_strategies.py [--bars 1000000] [--symbols 1] [--repeat 3]

The Bar events are built before the clock starts, so the figure is the stage alone
(strategy dispatch, the two SMAs, the comparison and the signals it emits). Each repeat
runs a fresh stage over the same bars; the best run is reported, since on a shared
machine the slower runs measure the neighbours.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.context import Context  # noqa: E402
from agents.strategy import StrategyStage  # noqa: E402
from schemas.market import Bar  # noqa: E402
from strategies.registry import make_params, resolve  # noqa: E402

MINUTE = 60_000_000_000
T0 = 1_704_205_800_000_000_000


def synthetic_bars(n: int, symbols: int, seed: int) -> list[Bar]:
    """A geometric random walk per symbol, interleaved symbol by symbol, as Bar events."""
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, size=n)))
    names = [f"SYM{k}" for k in range(symbols)]
    bars = []
    for i, close in enumerate(closes.tolist()):
        ts = T0 + (i // symbols) * MINUTE
        symbol = names[i % symbols]
        event_id = f"{symbol}:{ts}"
        bars.append(Bar(event_id=event_id, ts_event=ts, ts_init=ts, correlation_id=event_id,
                        causation_id="", producer="feed", run_id="bench", symbol=symbol,
                        open=close, high=close, low=close, close=close, volume=1000.0))
    return bars


def timed_run(stage: StrategyStage, bars: list[Bar]) -> tuple[float, int]:
    """Seconds to push every bar through the stage, and the number of events it made."""
    on_bar = stage.on_bar
    signals = 0
    start = time.perf_counter()
    for bar in bars:
        out = on_bar(bar)
        if out:
            signals += len(out)
    return time.perf_counter() - start, signals


def main() -> None:
    """Build the bars, push them through StrategyStage.on_bar and print bars/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-volatility", action="store_true")
    args = parser.parse_args()

    bars = synthetic_bars(args.bars, args.symbols, args.seed)
    cls = resolve("sma_cross")
    params = make_params(cls, {})
    runs = []
    for _ in range(args.repeat):
        stage = StrategyStage(Context("bench", "strategy"), [("sma_cross", cls, params)],
                              with_volatility=args.with_volatility)
        runs.append(timed_run(stage, bars))
    elapsed, signals = min(runs)
    print(f"sma_cross(10, 30) via StrategyStage: {len(bars):,} bars, {args.symbols} symbol(s), "
          f"{signals:,} signals, {elapsed:.3f} s -> {len(bars) / elapsed:,.0f} bars/s "
          f"({elapsed / len(bars) * 1e9:,.0f} ns/bar), best of {args.repeat}")


if __name__ == "__main__":
    main()
