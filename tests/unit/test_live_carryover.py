"""A live run that continues the previous one: the orders execution keeps as working,
the carried-over state through the pipeline, orders taken over (carried or adopted) as
open exposure, and which earlier run is continued."""
from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.config import AlpacaConfig
from connectors.alpaca.execution import AlpacaExecution
from connectors.alpaca.reports import trade_update_report
from firetape.config import load_config
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.live_carryover import (
    CarryOverError, final_state, previous_live_run, run_to_continue,
)
from firetape.runtime.pipeline import build_stages
from schemas import (
    BrokerStateAdopted, FillExecuted, OrderAccepted, OrderApproved, OrderCanceled,
    OrderDenied,
)
from schemas.broker import WorkingOrder
from schemas.carryover import CarriedDirection, CarriedLot, CarriedMark, StateCarriedOver
from tests.factories import (
    ACCOUNT, T0, bar, bars_from_closes, header, place_order, submit_order,
)
from tests.fixtures.alpaca.recorded import load
from tests.unit.test_alpaca_execution import (
    REPORTS, SECOND, bracket_parent, stage, update_report,
)

RUN = "live-run"


def carried_order(**changes) -> WorkingOrder:
    fields = dict(client_order_id="ft-earlier", symbol="AAA", side="BUY", quantity=Decimal(30),
                  strategy="sma_cross", broker_order_id="alp-7", correlation_id="chain-7",
                  placed_event_id="place-7", accepted=True)
    return WorkingOrder(**{**fields, **changes})


def carried(**changes) -> StateCarriedOver:
    fields = dict(account=ACCOUNT, from_run="20240101T000000Z-abc", from_run_id="abc",
                  cash=Decimal(90000),
                  lots=(CarriedLot(strategy="sma_cross", symbol="AAA", quantity=Decimal(60),
                                   price=Decimal(100)),
                        CarriedLot(strategy="sma_cross", symbol="AAA", quantity=Decimal(40),
                                   price=Decimal(110))),
                  marks=(CarriedMark(symbol="AAA", price=Decimal(120)),),
                  orders=(carried_order(),),
                  directions=(CarriedDirection(strategy="sma_cross", symbol="AAA",
                                               direction=1),))
    return StateCarriedOver(**header(T0 + SECOND, "carryover"), **{**fields, **changes})


def trade_update(order: dict, event: str, received_ns: int, **extra):
    update = msgspec.convert({"event": event, "order": order,
                              "timestamp": "2024-01-02T15:00:00Z", **extra},
                             wire.TradeUpdate, strict=False)
    return trade_update_report(update, REPORTS, ACCOUNT, received_ns, backfilled=False)


def alpaca_order(client_id: str, **changes) -> dict:
    return {**load("order_new"), "id": "alp-7", "client_order_id": client_id,
            "symbol": "AAA", "qty": "30", "side": "buy", **changes}


# -- execution keeps what is still working ----------------------------------------------

def test_working_orders_when_sent_accepted_partly_filled_then_filled_then_gone():
    execution = stage()
    order = place_order("AAA", ts=T0 + SECOND, strategy="sma_cross", quantity="10")
    execution.on_order(order)
    (working,) = execution.working_orders()
    assert (working.client_order_id, working.strategy, working.remaining, working.accepted,
            working.correlation_id, working.placed_event_id) == (
        order.client_order_id, "sma_cross", Decimal(10), False, order.correlation_id,
        order.event_id)
    execution.on_trade_update(update_report(order, "new", "2024-01-02T14:31:00Z",
                                            T0 + 2 * SECOND))
    execution.on_trade_update(update_report(
        order, "partial_fill", "2024-01-02T14:32:00Z", T0 + 3 * SECOND, execution_id="x1",
        price="100", qty="4", order={"status": "partially_filled", "filled_qty": "4",
                                     "filled_avg_price": "100"}))
    (working,) = execution.working_orders()
    assert working.accepted and working.filled_quantity == Decimal(4)
    assert working.remaining == Decimal(6) and working.broker_order_id
    execution.on_trade_update(update_report(
        order, "fill", "2024-01-02T14:33:00Z", T0 + 4 * SECOND, execution_id="x2",
        price="100", qty="6", order={"status": "filled", "filled_qty": "10",
                                     "filled_avg_price": "100"}))
    assert execution.working_orders() == ()


def test_working_orders_when_bracket_parent_filled_then_its_legs_work_under_its_strategy():
    execution = stage()
    order = place_order("AAPL", ts=T0 + SECOND, strategy="sma_cross", quantity="10",
                        take_profit=Decimal(230), stop_loss=Decimal(200))
    execution.on_order(order)
    execution.on_trade_update(update_report(
        order, "fill", "2024-07-01T14:30:00.1Z", T0 + 2 * SECOND, execution_id="p1",
        price="210", qty="10", order=bracket_parent(order, "filled", filled_qty="10",
                                                    filled_avg_price="210")))
    legs = execution.working_orders()
    assert [(w.client_order_id, w.side, w.strategy, w.leg_of) for w in legs] == [
        ("alpaca-tp-uuid", "SELL", "sma_cross", order.client_order_id),
        ("alpaca-sl-uuid", "SELL", "sma_cross", order.client_order_id)]


def test_carried_state_when_taken_by_execution_then_lots_booked_and_fill_of_earlier_order_keeps_strategy():
    execution = stage()
    events = execution.on_carried(carried())
    assert [(f.symbol, f.side, f.quantity, f.price, f.strategy, f.commission)
            for f in events] == [("AAA", "BUY", Decimal(60), Decimal(100), "sma_cross", 0),
                                 ("AAA", "BUY", Decimal(40), Decimal(110), "sma_cross", 0)]
    assert len({f.fill_id for f in events}) == 2
    # The earlier run's order fills now: booked to its strategy, in its chain, and not
    # accepted a second time (the earlier run published its OrderAccepted).
    accepted = execution.on_trade_update(trade_update(alpaca_order("ft-earlier"), "new",
                                                      T0 + 2 * SECOND))
    assert not any(isinstance(e, OrderAccepted) for e in accepted)
    filled = execution.on_trade_update(trade_update(
        alpaca_order("ft-earlier", status="filled", filled_qty="30", filled_avg_price="101"),
        "fill", T0 + 3 * SECOND, execution_id="exec-9", price="101", qty="30"))
    fill = next(e for e in filled if isinstance(e, FillExecuted))
    assert (fill.strategy, fill.correlation_id, fill.causation_id) == ("sma_cross", "chain-7",
                                                                      "place-7")
    assert execution.working_orders() == ()


# -- the pipeline starts from the carried state ----------------------------------------

def pipeline(**risk):
    config = load_config(None, environ={})
    config = msgspec.structs.replace(config, risk=msgspec.structs.replace(
        config.risk, var_min_history=2, **risk))
    execution = AlpacaExecution(Context(RUN, "execution", ACCOUNT), AlpacaConfig())
    bus = EmbeddedBus(build_stages(config, RUN, execution), None, RUN)
    return bus, {stage.name: stage for stage in bus.stages}


def test_carried_state_when_run_through_the_pipeline_then_portfolio_risk_and_allocator_continue():
    bus, stages = pipeline()
    bus.publish(carried())
    portfolio, risk, allocator = stages["portfolio"], stages["risk"], stages["allocator"]
    assert portfolio.positions == {"AAA": Decimal(100)}
    assert [list(lot) for lot in portfolio.sleeves[("sma_cross", "AAA")].lots] == [
        [Decimal(60), Decimal(100)], [Decimal(40), Decimal(110)]]
    assert portfolio.cash == Decimal(90000)
    # Valued at once at the carried mark: 90000 + 100 x 120; unrealized = 12000 - 10400.
    assert portfolio.high_water_mark == Decimal(90000) + 100 * 120
    assert risk.position("AAA") == Decimal(100)
    assert allocator.position[("sma_cross", "AAA")] == Decimal(100)
    assert allocator.direction[("sma_cross", "AAA")] == 1
    assert allocator.pending[("sma_cross", "AAA")] == Decimal(30)
    assert allocator.open_orders["ft-earlier"] == (("sma_cross", "AAA"), Decimal(30))


def decision_for(bus, quantity: str, ts: int):
    """Risk's decision on a request to buy `quantity` AAA (read from what risk returns)."""
    risk = next(s for s in bus.stages if s.name == "risk")
    request = submit_order("AAA", quantity=quantity, ts=ts, ref_price=100.0)
    return next(e for e in risk.routes()[type(request)](request)
                if isinstance(e, OrderApproved | OrderDenied))


def warmed(bus) -> None:
    for i, close in enumerate((100.0, 100.5, 100.0, 100.5)):
        bus.publish(bar("AAA", T0 + (i + 1) * 60 * SECOND, close=close))


def adopted(orders) -> BrokerStateAdopted:
    return BrokerStateAdopted(**header(T0, "reconciliation"), account=ACCOUNT,
                              cash=Decimal(100000), orders=orders)


def test_adopted_open_order_when_not_yet_filled_then_counted_as_exposure_until_it_ends():
    # max_symbol_exposure 10% of 100,000: an open buy of 95 at 100 leaves room for 5.
    stranger = carried_order(client_order_id="web-manual-1", strategy="", quantity=Decimal(95),
                             correlation_id="web-manual-1", placed_event_id="")
    bus, stages = pipeline()
    bus.publish(adopted((stranger,)))
    warmed(bus)
    later = T0 + 6 * 60 * SECOND
    denied = decision_for(bus, "10", later)
    assert isinstance(denied, OrderDenied)
    exposure = next(c for c in denied.checks if c.name == "symbol_exposure")
    assert not exposure.passed
    # The adopted order is tracked by execution: its fill is booked (unattributed) ...
    execution = stages["execution"]
    events = execution.on_trade_update(trade_update(
        alpaca_order("web-manual-1", qty="95", status="partially_filled", filled_qty="45",
                     filled_avg_price="100"),
        "partial_fill", later + SECOND, execution_id="exec-m", price="100", qty="45"))
    fill = next(e for e in events if isinstance(e, FillExecuted))
    assert (fill.strategy, fill.quantity) == ("", Decimal(45))
    bus.publish(fill)
    assert stages["risk"].position("AAA") == Decimal(45)
    assert isinstance(decision_for(bus, "10", later + 2 * SECOND), OrderDenied)
    # ... and when the rest is canceled at Alpaca, only the 45 held count: room again.
    bus.publish(OrderCanceled(**header(later + 3 * SECOND, "execution"),
                              client_order_id="web-manual-1", account=ACCOUNT, symbol="AAA",
                              reason="canceled at broker"))
    assert isinstance(decision_for(bus, "10", later + 4 * SECOND), OrderApproved)


def test_adopted_open_order_when_risk_counts_it_then_same_request_without_it_is_approved():
    bus, _ = pipeline()
    bus.publish(adopted(()))
    warmed(bus)
    assert isinstance(decision_for(bus, "10", T0 + 6 * 60 * SECOND), OrderApproved)


def test_carried_state_when_config_adopts_then_only_directions_and_no_cash_change():
    bus, stages = pipeline()
    bus.publish(carried(cash=None, lots=(), marks=(), orders=()))
    portfolio = stages["portfolio"]
    assert portfolio.cash == portfolio.initial_cash and portfolio.positions == {}
    assert stages["allocator"].direction == {("sma_cross", "AAA"): 1}


# -- which run is continued -------------------------------------------------------------

def test_previous_live_run_when_several_runs_then_newest_live_run_of_the_same_account(tmp_path):
    def run(name: str, mode: str = "live", number: str = "PA1", account_type: str = "paper"):
        (tmp_path / name).mkdir()
        meta = {"mode": mode, "live": {"account_number": number, "account_type": account_type}}
        (tmp_path / name / "run.json").write_text(json.dumps(meta))

    run("20240101T000000Z-abc")
    run("20240102T000000Z-abc")
    run("20240102T000000Z-abc-2")
    run("20240102T000000Z-abc-10")
    run("20240103T000000Z-other", number="PA2")
    run("20240104T000000Z-bt", mode="backtest")
    run("20240105T000000Z-live", account_type="live")
    (tmp_path / "20240106T000000Z-broken").mkdir()
    assert previous_live_run(tmp_path, "PA1", "paper") == tmp_path / "20240102T000000Z-abc-10"
    assert previous_live_run(tmp_path, "PA2", "paper") == tmp_path / "20240103T000000Z-other"
    assert previous_live_run(tmp_path, "PA9", "paper") is None
    assert previous_live_run(tmp_path / "missing", "PA1", "paper") is None


def test_final_state_when_run_cannot_be_read_back_then_error_says_what_to_do(tmp_path):
    run_dir = tmp_path / "20240101T000000Z-abc"
    run_dir.mkdir()
    config = msgspec.to_builtins(load_config(None, environ={}))
    config["run"]["strategies"] = ["no_such_strategy"]
    (run_dir / "run.json").write_text(json.dumps({"mode": "live", "run_id": "abc",
                                                  "config": config}))
    with pytest.raises(CarryOverError) as raised:
        final_state(run_dir)
    message = str(raised.value)
    assert str(run_dir) in message and "--fresh" in message and "--carry-from" in message


def test_run_to_continue_when_fresh_or_named_then_none_or_that_run_if_of_this_account(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "run.json").write_text(json.dumps(
        {"mode": "live", "live": {"account_number": "PA1", "account_type": "paper"}}))
    assert run_to_continue(tmp_path, tmp_path / "mine", True, "PA1", "paper") is None
    assert run_to_continue(tmp_path, tmp_path / "mine", False, "PA1", "paper") == \
        tmp_path / "mine"
    assert run_to_continue(tmp_path, None, False, "PA1", "paper") == tmp_path / "mine"
    with pytest.raises(CarryOverError, match="not a live run of paper account PA2"):
        run_to_continue(tmp_path, tmp_path / "mine", False, "PA2", "paper")


def test_carried_halts_when_kill_switch_was_engaged_then_still_halted_until_released():
    from schemas import KillSwitchReleased
    from schemas.carryover import CarriedHalt

    bus, stages = pipeline()
    halts = (CarriedHalt(reason="kill_switch", detail="by ops: stop"),
             CarriedHalt(reason="daily_loss", detail="of another day"))
    risk = stages["risk"]
    changed = risk.routes()[StateCarriedOver](carried(halts=halts, orders=()))
    assert [(e.state, e.reason) for e in changed] == [
        ("HALTED", "kill_switch: carried over from 20240101T000000Z-abc: by ops: stop")]
    assert [h.reason for h in risk.halts] == ["kill_switch"]
    risk.routes()[KillSwitchReleased](KillSwitchReleased(
        **header(T0 + 2 * SECOND, "operator"), account=ACCOUNT, reason="go"))
    assert risk.trading_state == "ACTIVE"


# -- what else carries: the strategies, risk's day and returns, the drawdown -----------

def strategy_signals(stage, bars) -> list[tuple[str, int]]:
    return [(e.strategy, e.direction) for b in bars for e in stage.on_bar(b)
            if type(e).__name__ == "SignalGenerated"]


def test_carried_strategy_state_when_long_at_the_stop_then_the_next_run_exits_on_the_cross_below():
    # Falls, then rises: sma_cross (10/30) goes long; the run stops there.
    rising = bars_from_closes([100.0 - i for i in range(30)] + [70.0 + 3 * i for i in range(12)],
                              step=60 * SECOND)
    _, before = pipeline()
    assert ("sma_cross", 1) in strategy_signals(before["strategy"], rising)
    blob = before["strategy"].carried_state()
    # The next run's bars fall: the carried strategy knows it is long and exits; a fresh
    # one (no state carried) has no full window and no idea it holds anything.
    falling = bars_from_closes([80.0 - 5 * i for i in range(8)],
                               start=rising[-1].ts_event + 60 * SECOND, step=60 * SECOND)
    _, continued = pipeline()
    continued["strategy"].on_carried(carried(strategy_state=blob))
    assert strategy_signals(continued["strategy"], falling) == [("sma_cross", 0)]
    _, fresh = pipeline()
    fresh["strategy"].on_carried(carried())
    assert strategy_signals(fresh["strategy"], falling) == []


def new_york_date(ts: int) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts // SECOND, ZoneInfo("America/New_York")).date().isoformat()


def test_carried_day_when_restarted_the_same_day_then_its_opening_equity_still_counts():
    from schemas.carryover import CarriedDay

    # Valued at once at 90000 + 100 x 120 = 102000: 7.3 % below the day's 110000 opening.
    day = CarriedDay(date=new_york_date(T0 + SECOND), start_equity=Decimal(110000),
                     loss_breached=False)
    bus, stages = pipeline()
    bus.publish(carried(day=day, orders=()))
    assert [h.reason for h in stages["risk"].halts] == ["daily_loss"]
    assert stages["risk"].trading_day.start_equity == Decimal(110000)
    # The same numbers on another day: a new day opens at 102000, nothing lost yet.
    other = CarriedDay(date="2023-12-29", start_equity=Decimal(110000), loss_breached=False)
    bus, stages = pipeline()
    bus.publish(carried(day=other, orders=()))
    assert stages["risk"].halts == ()
    assert stages["risk"].trading_day.start_equity == Decimal(102000)


def test_carried_daily_loss_halt_when_the_same_day_then_still_engaged():
    from schemas.carryover import CarriedDay, CarriedHalt

    day = CarriedDay(date=new_york_date(T0 + SECOND), start_equity=Decimal(102000),
                     loss_breached=True)
    bus, stages = pipeline()
    bus.publish(carried(day=day, orders=(),
                        halts=(CarriedHalt(reason="daily_loss", detail="-3.5 %"),)))
    assert [h.reason for h in stages["risk"].halts] == ["daily_loss"]


def test_carried_high_water_mark_when_drawdown_was_released_then_not_halted_again():
    # 102000 against a 150000 peak: 32 % down, far past max_drawdown (8 %).
    bus, stages = pipeline()
    bus.publish(carried(high_water_mark=Decimal(150000), orders=()))
    assert stages["portfolio"].high_water_mark == Decimal(150000)
    assert [h.reason for h in stages["risk"].halts] == ["drawdown"]
    # The previous run's operator released that drawdown: it stays released.
    bus, stages = pipeline()
    bus.publish(carried(high_water_mark=Decimal(150000), drawdown_ack=Decimal("0.32"),
                        orders=()))
    assert stages["risk"].halts == ()


def test_carried_returns_when_taken_by_risk_then_the_var_has_its_history_at_once():
    from schemas.carryover import CarriedReturns

    returns = tuple(0.001 * ((-1) ** i) * (i % 7) for i in range(40))
    bus, stages = pipeline()
    bus.publish(carried(orders=(), histories=(
        CarriedReturns(symbol="BBB", mark=50.0, returns=returns),)))
    history = stages["risk"].history
    assert history.count("BBB") == 40 and history.marks["BBB"] == 50.0
    assert history.window("BBB", 40).tolist() == list(returns)
    # the next bar adds its return after the carried ones
    bus.publish(bar("BBB", T0 + 2 * SECOND, close=51.0))
    assert history.window("BBB", 2).tolist() == [returns[-1], 51.0 / 50.0 - 1.0]


def test_carried_votes_and_trade_records_when_taken_by_the_allocator_then_restored():
    from schemas.carryover import CarriedTradeRecord, CarriedVote

    _, stages = pipeline()
    allocator = stages["allocator"]
    allocator.on_carried(carried(orders=(), votes=(
        CarriedVote(symbol="AAA", strategy="sma_cross", direction=1, confidence=0.8),
        CarriedVote(symbol="AAA", strategy="gone", direction=1, confidence=1.0)),
        trade_records=(CarriedTradeRecord(strategy="sma_cross", wins=3, losses=2,
                                          win_sum=300.0, loss_sum=100.0),)))
    # a strategy no longer configured does not vote
    assert allocator.votes == {"AAA": {"sma_cross": (1, 0.8)}}
    record = allocator.records["sma_cross"]
    assert (record.count, record.kelly()) == (5, 0.6 - 0.4 / 2.0)


def test_final_state_when_read_back_then_votes_and_trade_records_are_the_allocators():
    from agents.sizing import TradeRecord
    from firetape.runtime.live_carryover import _trade_records, _votes

    _, stages = pipeline()
    allocator = stages["allocator"]
    allocator.votes = {"BBB": {"sma_cross": (0, 0.0)}, "AAA": {"sma_cross": (1, 0.5)}}
    allocator.records["sma_cross"] = record = TradeRecord()
    record.add(50.0)
    record.add(-20.0)
    assert [(v.symbol, v.direction) for v in _votes(allocator)] == [("AAA", 1), ("BBB", 0)]
    (carried_record,) = _trade_records(allocator)
    assert (carried_record.wins, carried_record.losses, carried_record.win_sum,
            carried_record.loss_sum) == (1, 1, 50.0, 20.0)


def test_carried_approvals_when_within_the_rate_window_then_they_count_for_the_order_rate():
    from firetape.runtime.live_carryover import _recent

    minute = 60 * SECOND
    assert _recent((T0, T0 + minute + 1, T0 + minute + 2)) == (T0 + minute + 1, T0 + minute + 2)
    assert _recent(()) == ()
    bus, stages = pipeline(max_orders_per_minute=2)
    bus.publish(carried(orders=(), approvals=(T0 + SECOND // 2, T0 + SECOND)))
    warmed(bus)
    decision = decision_for(bus, "1", T0 + 30 * SECOND)
    (rate,) = [check for check in decision.checks if check.name == "order_rate"]
    assert (rate.passed, rate.value) == (False, "2")   # the previous run's two approvals
