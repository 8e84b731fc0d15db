"""Where a live run starts from: the final state of the previous live run of the account.

The previous run is found under the runs directory (the newest live run of the same
broker account, or the one the operator names), and its final state is rebuilt the way
`firetape replay` rebuilds it: its recorded inputs fed through fresh stages, with no log
and no call to the broker. That state (open lots per strategy sleeve, cash, last closes,
the high-water mark, the orders still working, each sleeve's last direction, the halts
it stopped under, the trading day's opening equity, risk's return histories, and the
strategies' own state when the strategy setup is unchanged) becomes one
StateCarriedOver, an input of the new run, so the new run's replay needs nothing but its
own log.

Because each run records what it carried over, the state of a chain of runs is always
the state of the last one.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import msgspec

from agents.context import Context
from agents.prices import exact_price
from firetape.config import FiretapeConfig, strategy_setup, validate_strategies
from firetape.eventlog import EventLog
from firetape.runtime.live_inputs import LIVE_MODE, replay_live_inputs
from firetape.runtime.session import LOG_DIR, read_meta
from risk.engine import CARRIED_HALTS
from schemas.broker import WorkingOrder
from schemas.carryover import (
    CarriedDay, CarriedDirection, CarriedHalt, CarriedLot, CarriedMark, CarriedReturns,
    CarriedTradeRecord, CarriedVote, StateCarriedOver,
)


class CarryOverError(Exception):
    """The previous run cannot be read back; the message says which and what to do."""


def run_to_continue(runs_root: Path, carry_from: Path | None, fresh: bool,
                    account_number: str, account_type: str) -> Path | None:
    """The run a new live run continues: none on a fresh start, the one named (it must be
    a live run of this account), or the newest live run of the account."""
    if fresh:
        return None
    if carry_from is None:
        return previous_live_run(runs_root, account_number, account_type)
    named = Path(carry_from)
    if _is_live_run_of(named, account_number, account_type):
        return named
    raise CarryOverError(f"--carry-from {named}: not a live run of {account_type} account "
                         f"{account_number}")


def _is_live_run_of(run_dir: Path, account_number: str, account_type: str) -> bool:
    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return False      # not a run firetape can read
    live = meta.get("live") or {}
    return (meta.get("mode") == LIVE_MODE and live.get("account_number") == account_number
            and live.get("account_type") == account_type)


def previous_live_run(runs_root: Path, account_number: str, account_type: str) -> Path | None:
    """The newest live run of this broker account under `runs_root`, or None."""
    root = Path(runs_root)
    if not root.is_dir():
        return None
    runs = sorted((p for p in root.iterdir() if (p / "run.json").is_file()), key=_start_order)
    return next((run for run in reversed(runs)
                 if _is_live_run_of(run, account_number, account_type)), None)


def _start_order(run_dir: Path) -> tuple[str, int, str]:
    """Run directories are `<UTC start, to the second>-<run id>[-n]` (session.new_run_dir):
    by start time, then n (a second start of one run id in the same second is `-2`)."""
    stamp, _, rest = run_dir.name.partition("-")
    run_id, _, n = rest.partition("-")
    return stamp, int(n) if n.isdigit() else 1, run_id


class CarriedState(NamedTuple):
    """The final state of a live run, as the next run takes it over."""

    run_dir: Path
    run_id: str
    cash: Decimal
    lots: tuple[CarriedLot, ...]
    marks: tuple[CarriedMark, ...]
    orders: tuple[WorkingOrder, ...]
    directions: tuple[CarriedDirection, ...]
    halts: tuple[CarriedHalt, ...] = ()
    day: CarriedDay | None = None
    high_water_mark: Decimal | None = None
    drawdown_ack: Decimal | None = None
    histories: tuple[CarriedReturns, ...] = ()
    approvals: tuple[int, ...] = ()
    votes: tuple[CarriedVote, ...] = ()
    trade_records: tuple[CarriedTradeRecord, ...] = ()
    strategy_state: bytes = b""
    # symbol -> ts_event of the last bar the run took: the new run takes only later bars
    # (its strategies and risk already hold these), not part of the carried event.
    last_bars: dict[str, int] = {}


def final_state(run_dir: Path, config: FiretapeConfig | None = None) -> CarriedState:
    """The state `run_dir` ended in, rebuilt from its recorded inputs (CarryOverError when
    it cannot be: an unreadable run.json, a strategy that no longer exists, ...).

    The strategies' state is kept only when `config`, the new run's, sets the strategies
    up as the previous run did (same strategies, parameters and sizing method)."""
    run_dir = Path(run_dir)
    try:
        meta = read_meta(run_dir)
        if meta.get("mode") != LIVE_MODE:
            raise ValueError("not a live run")
        previous = msgspec.convert(meta["config"], FiretapeConfig, strict=False)
        validate_strategies(previous, str(run_dir / "run.json"))
        run_id = meta["run_id"]
        with EventLog(run_dir / LOG_DIR, mode="r") as log:
            bus, _ = replay_live_inputs(previous, run_id, log, None)
            bus.finish()
            last_bars: dict[str, int] = {}
            for record in log.read("md.bars"):
                symbol = record.key.decode()
                last_bars[symbol] = max(record.ts_event, last_bars.get(symbol, record.ts_event))
    except Exception as exc:   # whatever stops the read-back, the operator must choose
        raise CarryOverError(
            f"cannot carry over the state of {run_dir}: {type(exc).__name__}: {exc}; name "
            f"another run with --carry-from, or start flat with --fresh") from exc
    stages = {stage.name: stage for stage in bus.stages}
    portfolio, allocator = stages["portfolio"], stages["allocator"]
    lots = open_lots(portfolio)
    # The new run values every held symbol before its first bar: at the last close seen,
    # else at the price it was last booked at.
    last_price = {lot.symbol: lot.price for lot in lots}
    marks = tuple(CarriedMark(symbol=symbol, price=exact_price(portfolio.marks[symbol])
                              if symbol in portfolio.marks else price)
                  for symbol, price in sorted(last_price.items()))
    directions = tuple(CarriedDirection(strategy=strategy, symbol=symbol, direction=direction)
                       for (strategy, symbol), direction in sorted(allocator.direction.items())
                       if direction)
    halts = tuple(CarriedHalt(reason=halt.reason, detail=halt.detail, until_ts=halt.until_ts)
                  for halt in stages["risk"].halts if halt.reason in CARRIED_HALTS)
    risk, strategy = stages["risk"], stages["strategy"]
    same_setup = config is not None and strategy_setup(config) == strategy_setup(previous)
    return CarriedState(run_dir, run_id, portfolio.cash, lots, marks,
                        stages["execution"].working_orders(), directions, halts,
                        day=_trading_day(risk), high_water_mark=portfolio.high_water_mark,
                        drawdown_ack=risk.drawdown_ack, histories=_histories(risk.history),
                        approvals=_recent(risk.approvals),
                        votes=_votes(allocator), trade_records=_trade_records(allocator),
                        strategy_state=strategy.carried_state() if same_setup else b"",
                        last_bars=last_bars)


def _trading_day(risk) -> CarriedDay | None:
    day = risk.trading_day
    if day.date is None:
        return None                   # never valued: no day to continue
    return CarriedDay(date=day.date.isoformat(), start_equity=day.start_equity,
                      loss_breached=day.loss_breached)


def _recent(approvals: tuple[int, ...]) -> tuple[int, ...]:
    """The approvals within the order-rate window of the last one (older ones can no
    longer count)."""
    from risk.checks import RATE_WINDOW_NS

    return tuple(ts for ts in approvals if approvals and ts > approvals[-1] - RATE_WINDOW_NS)


def _votes(allocator) -> tuple[CarriedVote, ...]:
    return tuple(CarriedVote(symbol=symbol, strategy=strategy, direction=direction,
                             confidence=confidence)
                 for symbol, votes in sorted(allocator.votes.items())
                 for strategy, (direction, confidence) in sorted(votes.items()))


def _trade_records(allocator) -> tuple[CarriedTradeRecord, ...]:
    return tuple(CarriedTradeRecord(strategy=strategy, wins=record.wins,
                                    losses=record.losses, win_sum=record.win_sum,
                                    loss_sum=record.loss_sum)
                 for strategy, record in sorted(allocator.records.items()))


def _histories(history) -> tuple[CarriedReturns, ...]:
    """Every symbol's mark and returns as risk's VaR holds them, by symbol."""
    return tuple(CarriedReturns(symbol=symbol, mark=history.marks[symbol],
                                returns=tuple(history.window(symbol, history.count(symbol))
                                              .tolist()))
                 for symbol in sorted(history.rows))


def open_lots(portfolio) -> tuple[CarriedLot, ...]:
    """The portfolio stage's open FIFO lots, by strategy sleeve, oldest first."""
    return tuple(CarriedLot(strategy=strategy, symbol=symbol, quantity=lot[0], price=lot[1])
                 for (strategy, symbol), sleeve in sorted(portfolio.sleeves.items())
                 for lot in sleeve.lots)


def carried_over(state: CarriedState, ctx: Context, account: str, now_ns: int, *,
                 adopt: bool, keep_directions: Callable[[CarriedDirection], bool]
                 ) -> StateCarriedOver:
    """The input event that starts a run from `state`. When the config adopts the
    broker's state, positions, cash and orders come from the broker (BrokerStateAdopted),
    so only the halts and the directions of the sleeves that `keep_directions` accepts
    are carried."""
    event_id = ctx.derive_id(ctx.producer, "carried", now_ns)
    # Its own chain: the carry-over fills and the first valuation join it.
    header = {"event_id": event_id, "ts_event": now_ns, "ts_init": now_ns,
              "correlation_id": event_id, "causation_id": "", "producer": ctx.producer,
              "run_id": ctx.run_id}
    # What holds whoever's positions and cash are the truth: risk's day, released
    # drawdown and return histories, the ensemble's votes, the closed-trade records and
    # the strategies' own state.
    kept = {"day": state.day, "drawdown_ack": state.drawdown_ack,
            "histories": state.histories, "approvals": state.approvals, "votes": state.votes,
            "trade_records": state.trade_records, "strategy_state": state.strategy_state}
    if adopt:
        return StateCarriedOver(**header, account=account, from_run=state.run_dir.name,
                                from_run_id=state.run_id,
                                directions=tuple(filter(keep_directions, state.directions)),
                                halts=state.halts, **kept)
    return StateCarriedOver(**header, account=account, from_run=state.run_dir.name,
                            from_run_id=state.run_id, cash=state.cash, lots=state.lots,
                            marks=state.marks, orders=state.orders,
                            directions=state.directions, halts=state.halts,
                            high_water_mark=state.high_water_mark, **kept)
