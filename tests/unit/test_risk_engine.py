"""RiskStage as a stage: halts and their explicit releases, order tracking, ids, limits."""
from __future__ import annotations

from decimal import Decimal

import msgspec

import schemas as s
from agents.context import Context
from risk import engine
from tests import factories as f
from tests.unit.test_risk_checks import Desk, result, valued

NS = 1_000_000_000
HOUR = 3600 * NS


def control(kind, ts: int = f.T0, **fields):
    return kind(**f.header(ts, "operator"), account=f.ACCOUNT, **fields)


def state_changes(events) -> list[s.TradingStateChanged]:
    return [e for e in events if isinstance(e, s.TradingStateChanged)]


def halted_by_drawdown(desk: Desk) -> s.TradingStateChanged:
    (changed,) = desk.send(valued("920000", drawdown="0.09"))
    return changed


def test_valuation_when_drawdown_reaches_limit_then_halted_with_cooldown():
    desk = Desk()
    changed = halted_by_drawdown(desk)
    assert (changed.state, changed.previous) == ("HALTED", "ACTIVE")
    assert changed.until_ts == f.T0 + 86400 * NS
    assert "drawdown 0.09 >= max_drawdown 0.08" in changed.reason
    assert desk.send(valued("920000", drawdown="0.10", ts=f.T0 + 1)) == []
    denied = desk.decide(f.submit_order(quantity="1", ts=f.T0 + 2))
    assert denied.trading_state == "HALTED"
    assert result(denied, "trading_state").passed is False


def test_halt_release_when_before_cooldown_then_refused_and_still_halted():
    desk = Desk()
    halted_by_drawdown(desk)
    (refusal,) = desk.send(control(s.HaltReleased, f.T0 + HOUR, reason="looked fine"))
    assert (refusal.state, refusal.previous) == ("HALTED", "HALTED")
    assert refusal.reason == "release refused: cooldown until 2024-01-03T14:30:00+00:00"
    assert isinstance(desk.decide(f.submit_order(quantity="1", ts=f.T0 + HOUR)), s.OrderDenied)


def test_halt_release_when_after_cooldown_then_active_and_orders_approved():
    desk = Desk()
    halted_by_drawdown(desk)
    later = f.T0 + f.DAY
    (release,) = desk.send(control(s.HaltReleased, later, reason="reviewed", operator="ops"))
    assert (release.state, release.previous) == ("ACTIVE", "HALTED")
    assert release.reason == "released by ops: reviewed"
    # The drawdown the operator acknowledged does not halt again on the next valuation...
    assert desk.send(valued("920000", drawdown="0.09", ts=later)) == []
    approved = desk.decide(f.submit_order(quantity="1", ts=later))
    assert isinstance(approved, s.OrderApproved)
    # ...but a drawdown deeper by another max_drawdown does.
    again = desk.send(valued("830000", drawdown="0.17", ts=later + 1))
    assert [(e.state, e.reason.split(":")[0]) for e in again] == [
        ("HALTED", "drawdown"), ("HALTED", "daily_loss")]


def test_kill_switch_when_engaged_then_everything_denied_until_released():
    desk = Desk()
    desk.send(f.fill(quantity="10"))
    (engaged,) = desk.send(control(s.KillSwitchEngaged, reason="broker outage", operator="ana"))
    assert (engaged.state, engaged.previous) == ("HALTED", "ACTIVE")
    assert "by ana: broker outage" in engaged.reason
    denied = desk.decide(f.submit_order(side="SELL", quantity="10"))   # even a reduction
    assert not result(denied, "kill_switch").passed
    assert not result(denied, "trading_state").passed
    (released,) = desk.send(control(s.KillSwitchReleased, reason="back"))
    assert (released.state, released.previous) == ("ACTIVE", "HALTED")
    assert isinstance(desk.decide(f.submit_order(side="SELL", quantity="10")), s.OrderApproved)


def test_kill_switch_release_when_drawdown_halt_remains_then_still_halted():
    desk = Desk()
    halted_by_drawdown(desk)
    desk.send(control(s.KillSwitchEngaged, reason="x"))
    (released,) = desk.send(control(s.KillSwitchReleased, reason="y"))
    assert released.state == "HALTED"
    assert "still engaged: drawdown" in released.reason
    assert desk.stage.trading_state == "HALTED"


def test_halt_release_when_only_kill_switch_engaged_then_kill_switch_stays():
    desk = Desk()
    desk.send(control(s.KillSwitchEngaged, reason="x"))
    (answer,) = desk.send(control(s.HaltReleased, reason="try"))
    assert answer.state == "HALTED"
    assert "still engaged: kill_switch" in answer.reason


def test_first_event_when_kill_switch_configured_then_halt_announced_and_order_denied():
    desk = Desk(kill_switch=True)
    events = desk.send(f.submit_order(quantity="1"))
    (announced,) = state_changes(events)
    assert announced.state == "HALTED"
    assert announced.reason == "kill_switch: engaged at start by configuration"
    assert isinstance(events[-1], s.OrderDenied)
    assert state_changes(desk.send(f.submit_order(quantity="1"))) == []


def test_valuation_when_daily_loss_reached_then_reducing_allows_only_reductions():
    desk = Desk()
    desk.send(f.fill(quantity="10"))
    assert desk.send(valued("1000000")) == []
    (reducing,) = desk.send(valued("960000", drawdown="0.04", ts=f.T0 + HOUR))
    assert (reducing.state, reducing.previous) == ("REDUCING", "ACTIVE")
    assert "daily loss 0.04 >= max_daily_loss 0.03" in reducing.reason
    buy = desk.decide(f.submit_order(quantity="1", ts=f.T0 + HOUR))
    assert isinstance(buy, s.OrderDenied)
    assert "reducing only" in result(buy, "trading_state").reason
    sell = desk.decide(f.submit_order(side="SELL", quantity="5", ts=f.T0 + HOUR))
    assert isinstance(sell, s.OrderApproved)
    assert result(sell, "trading_state").reason == "reducing"
    assert desk.send(valued("950000", drawdown="0.05", ts=f.T0 + 2 * HOUR)) == []


def test_valuation_when_new_trading_day_then_daily_loss_released_by_event():
    desk = Desk()
    desk.send(valued("1000000"))
    desk.send(valued("960000", drawdown="0.04", ts=f.T0 + HOUR))
    (reset,) = desk.send(valued("960000", drawdown="0.04", ts=f.T0 + f.DAY))
    assert (reset.state, reset.previous, reset.reason) == ("ACTIVE", "REDUCING", "new trading day")
    assert isinstance(desk.decide(f.submit_order(quantity="1", ts=f.T0 + f.DAY)), s.OrderApproved)


def test_valuation_when_same_new_york_date_after_utc_midnight_then_no_reset():
    desk = Desk()
    desk.send(valued("1000000"))                                   # 09:30 New York
    desk.send(valued("960000", drawdown="0.04", ts=f.T0 + HOUR))
    late = f.T0 + 12 * HOUR                                          # 21:30 NY, 02:30 UTC
    assert desk.send(valued("960000", drawdown="0.04", ts=late)) == []
    assert desk.stage.trading_state == "REDUCING"


def test_valuation_when_equity_unreadable_then_orders_denied_until_readable_one():
    desk = Desk()
    assert desk.send(valued("NaN", drawdown="NaN")) == []
    denied = desk.decide(f.submit_order(quantity="1"))
    assert isinstance(denied, s.OrderDenied)
    assert result(denied, "symbol_exposure").reason.startswith("check raised: InvalidOperation")
    desk.send(valued("1000000", ts=f.T0 + 1))
    assert isinstance(desk.decide(f.submit_order(quantity="1", ts=f.T0 + 1)), s.OrderApproved)


def test_order_update_when_canceled_then_open_quantity_no_longer_counts():
    desk = Desk(max_gross_exposure=1.0)
    first = f.submit_order(quantity="600")
    assert isinstance(desk.decide(first), s.OrderApproved)
    assert isinstance(desk.decide(f.submit_order(quantity="600")), s.OrderDenied)
    desk.send(s.OrderCanceled(**f.header(), client_order_id=first.client_order_id,
                              account=f.ACCOUNT, symbol="AAA", reason="user"))
    assert isinstance(desk.decide(f.submit_order(quantity="600")), s.OrderApproved)


def test_fill_when_order_fills_then_position_moves_and_open_order_shrinks():
    desk = Desk(max_gross_exposure=1.0)
    order = f.submit_order(quantity="600")
    desk.decide(order)
    fill = msgspec.structs.replace(f.fill(quantity="200", leaves="400"),
                                   client_order_id=order.client_order_id)
    assert desk.send(fill) == []
    assert desk.stage.position("AAA") == Decimal(200)
    # 200 filled + 400 still open + 400 asked = 1000 of 100 = 0.1: exactly at the limit.
    approved = desk.decide(f.submit_order(quantity="400"))
    assert result(approved, "symbol_exposure").value == "0.1"


def test_limit_changed_when_valid_then_applied_without_event():
    desk = Desk()
    command = control(s.LimitChanged, name="max_order_quantity", value="5")
    assert desk.send(command) == []
    assert desk.stage.limits.max_order_quantity == Decimal(5)
    assert result(desk.decide(f.submit_order(quantity="6")), "order_quantity").limit == "5"


def test_limit_changed_when_name_or_value_invalid_then_ignored_and_old_value_kept():
    desk = Desk()
    before = desk.stage.limits
    assert desk.send(control(s.LimitChanged, name="max_leverage", value="3")) == []
    assert desk.send(control(s.LimitChanged, name="max_drawdown", value="2.5")) == []
    assert desk.send(control(s.LimitChanged, name="var_lookback", value="1")) == []
    assert desk.stage.limits == before


def test_limit_changed_when_kill_switch_set_then_halt_is_an_event():
    desk = Desk()
    (changed,) = desk.send(control(s.LimitChanged, name="kill_switch", value="true"))
    assert changed.state == "HALTED"
    (lifted,) = desk.send(control(s.LimitChanged, name="kill_switch", value="false"))
    assert lifted.state == "ACTIVE"


def test_decide_when_approved_then_ids_derive_from_request_and_terms_are_copied():
    desk = Desk()
    order = f.submit_order(quantity="3", order_type="LIMIT", limit_price=Decimal("99.5"))
    approved, place = desk.send(order)
    ctx = Context(f.RUN, "risk")
    assert approved.event_id == ctx.header(order, 0)["event_id"]
    assert place.event_id == ctx.header(order, 1)["event_id"]
    assert place.decision_id == approved.event_id
    assert (place.client_order_id, place.limit_price, place.quantity) == (
        order.client_order_id, Decimal("99.5"), Decimal(3))
    assert result(approved, "price_known").value == "99.5"


def test_decide_when_approved_then_every_term_of_the_request_is_in_the_order():
    order = f.submit_order(quantity="3", order_type="LIMIT", limit_price=Decimal("99.5"),
                           time_in_force="DAY", security_type="ETF", reduce_only=True,
                           stop_loss=Decimal("90"), take_profit=Decimal("120"),
                           parent_id="p-1", stop_price=Decimal("98"), account_type="live")
    approved, place = Desk().send(order)
    assert isinstance(approved, s.OrderApproved)
    assert engine.TERMS == tuple(f for f in s.PlaceOrder.__struct_fields__
                                 if f not in s.Event.__struct_fields__ and f != "decision_id")
    assert {t: getattr(place, t) for t in engine.TERMS} == {
        t: getattr(order, t) for t in engine.TERMS}


def test_decide_when_same_inputs_replayed_then_identical_output_bytes():
    events = [valued("1000000"), f.submit_order(quantity="5"),
              valued("900000", drawdown="0.1", ts=f.T0 + 1), f.submit_order(quantity="5")]

    def run() -> bytes:
        desk = Desk()
        return b"".join(msgspec.json.encode(out) for e in events for out in desk.send(e))

    first = run()
    assert first == run()
    assert b"OrderApproved" in first and b"OrderDenied" in first


def test_decide_when_engine_itself_raises_then_request_still_denied(monkeypatch):
    def broken(order, limits):
        raise RuntimeError("bug")

    monkeypatch.setattr(engine, "run_checks", broken)
    denied = Desk().decide(f.submit_order(quantity="1"))
    assert denied.reasons == ("risk engine raised: RuntimeError: bug",)


def test_bar_when_received_then_no_events_and_mark_updated():
    desk = Desk(symbols=())
    assert desk.send(f.bar("NEW", close=42.0)) == []
    assert result(desk.decide(f.submit_order("NEW", ref_price=0.0)), "price_known").value == "42.0"


def test_decide_when_only_bars_came_before_then_valuation_age_counts_from_first_bar():
    desk = Desk(symbols=())
    desk.send(f.bar("AAA", ts=f.T0 - 90 * NS, close=50.0))
    desk.send(f.bar("AAA", ts=f.T0 - 30 * NS, close=51.0))
    fresh = result(desk.decide(f.submit_order("AAA", quantity="1")), "portfolio_fresh")
    assert (fresh.passed, fresh.value) == (True, "90")


def test_finish_when_stream_ends_then_nothing_emitted():
    assert Desk().stage.finish(None) == ()
