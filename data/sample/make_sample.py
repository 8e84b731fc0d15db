"""Regenerate data/sample/bars.csv exactly: `python data/sample/make_sample.py` from the repo root."""
from pathlib import Path

from connectors.synthetic import generate_bars, round_prices, write_bars

# Chosen so that sma_cross(10, 30), momentum(20, 2%) and mean_reversion(z 20, 2.0/0.5)
# each trade tens of times; seed 6 gives three trending symbols (SYM001 up, SYM002 down,
# SYM004 up) and three mean-reverting ones (SYM000, SYM003, SYM005).
SAMPLE = dict(symbols=6, bars_per_symbol=504, seed=6, interval="1d", start="2023-01-02",
              mu=0.08, sigma=0.3, start_price=(20.0, 200.0), mean_reverting=0.5, half_life=8.0)


def main(target: Path = Path(__file__).with_name("bars.csv")) -> Path:
    """Write the sample (by default next to this script) and return its path."""
    frame = round_prices(generate_bars(**SAMPLE), decimals=2)
    return write_bars(frame, target)


if __name__ == "__main__":
    print(main())
