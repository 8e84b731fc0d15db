"""End-to-end backtest throughput: synthetic minute bars -> sma_cross -> sizing -> risk ->
paper broker -> portfolio, with every event written to the durable event log.

    .venv/bin/python bench/bench_backtest.py                 # 100 symbols x 7,800 bars
    .venv/bin/python bench/bench_backtest.py --profile 25    # plus the top of a cProfile
    .venv/bin/python bench/bench_backtest.py --digests       # plus every topic's digest

Prints bars/s for the pipeline (feed + stages + log, excluding data generation and the
ClickHouse audit written after the run, which bench/bench_audit.py measures) and the
process's peak resident memory. Synthetic prices are rounded to cents, like real bars.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.synthetic import generate_bars, round_prices  # noqa: E402
from firetape.config import load_config, with_strategies  # noqa: E402
from firetape.runtime.session import run_session  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=7_800, help="bars per symbol")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--strategy", default="sma_cross")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--digests", action="store_true",
                        help="print each topic's SHA-256 digest (to prove a change kept the bytes)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    frame = round_prices(generate_bars(args.symbols, args.bars, seed=args.seed, interval="1min"))
    generated = time.perf_counter() - t0
    # FIRETAPE_... variables apply, e.g. FIRETAPE_RISK__KILL_SWITCH=true
    config = with_strategies(load_config(None), args.strategy.split(","))
    with tempfile.TemporaryDirectory() as runs:
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        result = run_session(frame, config, Path(runs), audit=False)  # bench_audit.py measures it
        if profiler:
            profiler.disable()
        log_bytes = sum(p.stat().st_size for p in (result.run_dir / "log").rglob("*.log"))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bars            {result.bars:,} ({args.symbols} symbols x {args.bars:,})")
    print(f"generate        {generated:.2f} s (not counted)")
    print(f"pipeline        {result.seconds:.2f} s")
    print(f"throughput      {result.bars_per_second:,.0f} bars/s (wall clock)")
    # CPU time of the pipeline: less sensitive than wall time to a busy machine
    print(f"cpu             {result.cpu_seconds:.2f} s -> "
          f"{result.bars / result.cpu_seconds:,.0f} bars per CPU-second")
    print(f"events          {sum(result.counts.values()):,} "
          f"({', '.join(f'{k} {v:,}' for k, v in sorted(result.counts.items()))})")
    print(f"event log       {log_bytes / 2**20:,.0f} MiB")
    print(f"peak memory     {peak_mib:,.0f} MiB (max RSS of the process)")
    if args.digests:
        for topic, digest in sorted(result.digests.items()):
            print(f"digest          {topic:<16} {digest}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
