"""Risk engine micro-benchmark: the cost of a Bar and of one order decision.

    .venv/bin/python bench/bench_risk.py              # 1, 10 and 100 held symbols
    .venv/bin/python bench/bench_risk.py --held 100 --history 250 --decisions 3000

The engine's state is built only through its public handlers (bars, fills, valuations),
as a backtest builds it. For each number of held symbols it prints:

- ns per Bar: the RiskStage Bar handler (mark + return history), bars round-robin over
  the symbols;
- us per decision, marks unchanged: SubmitOrder -> decision with no bar since the last one;
- us per decision, marks moved: the same after one new bar for every `--moved` symbols
  (default 30, about what a 100-symbol minute backtest sees between two requests); the
  bars themselves are not timed.

Times are this thread's CPU time (time.thread_time_ns), medians for decisions.
Every decision is checked to be an approval, so the full path (all checks, VaR, the
approval events) is what is measured.
"""
from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import schemas as s  # noqa: E402
from agents.context import Context  # noqa: E402
from risk.engine import RiskStage  # noqa: E402
from risk.limits import RiskLimits  # noqa: E402

# CPU time of this thread: other work on a shared machine inflates it far less than
# wall time does. Its read costs are included in the figures (well under 1 us).
_clock = time.thread_time_ns
MINUTE = 60_000_000_000
T0 = 1_704_205_800_000_000_000   # 2024-01-02 09:30 New York
ACCOUNT = "paper"


class Market:
    """Seeded cent-rounded random-walk closes for `symbols` symbols, one bar each per minute."""

    def __init__(self, symbols: int, seed: int = 7) -> None:
        self.names = [f"SYM{i:03d}" for i in range(symbols)]
        self.rng = np.random.default_rng(seed)
        self.closes = np.round(self.rng.uniform(20.0, 200.0, symbols), 2)
        self.minute = 0
        self.seq = 0

    def bars(self, count: int) -> list[s.Bar]:
        """The next `count` bars, round-robin over the symbols (time moves per full round)."""
        out = []
        for _ in range(count):
            i = self.seq % len(self.names)
            if i == 0:
                self.minute += 1
            self.seq += 1
            close = round(float(self.closes[i]) * (1.0 + 0.001 * self.rng.standard_normal()), 2)
            self.closes[i] = max(close, 0.01)
            out.append(self._bar(self.names[i], float(self.closes[i])))
        return out

    def now(self) -> int:
        return T0 + self.minute * MINUTE

    def _bar(self, symbol: str, close: float) -> s.Bar:
        ts = self.now()
        return s.Bar(**header(f"{symbol}:{self.seq}", ts, "feed"), symbol=symbol, open=close,
                     high=close, low=close, close=close, volume=1000.0)


def header(event_id: str, ts: int, producer: str) -> dict:
    return dict(event_id=event_id, ts_event=ts, ts_init=ts, correlation_id=event_id,
                causation_id="", producer=producer, run_id="bench")


def build_desk(held: int, symbols: int, history: int) -> tuple[RiskStage, dict, Market]:
    """A warmed-up engine: `history` returns per symbol, `held` symbols with a position."""
    stage = RiskStage(Context("bench", "risk"), RiskLimits(max_orders_per_minute=10**6),
                      Decimal("100000000"))
    routes = stage.routes()
    market = Market(symbols)
    for bar in market.bars(symbols * (history + 1)):
        routes[s.Bar](bar)
    for i, symbol in enumerate(market.names[:held]):
        ts = market.now()
        routes[s.FillExecuted](s.FillExecuted(
            **header(f"fill{i}", ts, "execution"), fill_id=f"f{i}", client_order_id=f"seed{i}",
            broker_order_id="b", account=ACCOUNT, strategy="bench", symbol=symbol, side="BUY",
            quantity=Decimal(100 + i), price=Decimal(repr(float(market.closes[i]))),
            commission=Decimal(0), leaves_quantity=Decimal(0)))
    equity = Decimal("100000000")
    routes[s.PortfolioValued](s.PortfolioValued(
        **header("valued", market.now(), "portfolio"), account=ACCOUNT, cash=equity,
        equity=equity, gross_exposure=Decimal(0), net_exposure=Decimal(0),
        realized_pnl=Decimal(0), unrealized_pnl=Decimal(0), commissions=Decimal(0),
        high_water_mark=equity, drawdown=Decimal(0)))
    return stage, routes, market


def time_bars(routes: dict, market: Market, count: int) -> float:
    """ns per Bar handler call."""
    bars = market.bars(count)
    on_bar = routes[s.Bar]
    start = _clock()
    for bar in bars:
        on_bar(bar)
    return (_clock() - start) / count


def time_decisions(routes: dict, market: Market, held: int, decisions: int,
                   moved: int, first: int = 0) -> float:
    """Median us per decision; `moved` bars (untimed) before each one. Request k is
    numbered from `first` so client order ids never repeat within one engine."""
    decide = routes[s.SubmitOrder]
    on_bar = routes[s.Bar]
    samples = []
    for k in range(first, first + decisions):
        for bar in market.bars(moved):
            on_bar(bar)
        symbol = market.names[k % held]
        ts = market.now() + k   # distinct, increasing: the rate window stays honest
        request = s.SubmitOrder(**header(f"req{k}", ts, "allocator"), client_order_id=f"c{k}",
                                account=ACCOUNT, strategy="bench", symbol=symbol,
                                side="BUY" if k % 2 else "SELL", quantity=Decimal(1),
                                ref_price=float(market.closes[k % held]))
        start = _clock()
        out = decide(request)
        samples.append(_clock() - start)
        if not isinstance(out[0], s.OrderApproved):
            reasons = getattr(out[0], "reasons", ())
            raise SystemExit(f"decision {k} was not an approval: {reasons}")
    return float(np.median(samples)) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--symbols", type=int, default=100, help="symbols with bars")
    parser.add_argument("--history", type=int, default=250, help="returns per symbol")
    parser.add_argument("--bars", type=int, default=200_000, help="bars timed per case")
    parser.add_argument("--decisions", type=int, default=2_000, help="decisions per case")
    parser.add_argument("--moved", type=int, default=30, help="bars before a 'moved' decision")
    args = parser.parse_args()
    print(f"{args.symbols} symbols with bars, {args.history} returns of history each")
    print(f"{'held':>5} {'ns/bar':>8} {'us/decision':>12} {'us/decision':>12}")
    print(f"{'':>5} {'':>8} {'(unchanged)':>12} {f'({args.moved} moved)':>12}")
    for held in args.held:
        stage, routes, market = build_desk(held, max(args.symbols, held), args.history)
        per_bar = time_bars(routes, market, args.bars)
        quiet = time_decisions(routes, market, held, args.decisions, moved=0)
        moved = time_decisions(routes, market, held, args.decisions, moved=args.moved,
                               first=args.decisions)
        print(f"{held:>5} {per_bar:>8.0f} {quiet:>12.1f} {moved:>12.1f}")


if __name__ == "__main__":
    main()
