"""Risk invariants under arbitrary event sequences (hypothesis).

Whatever arrives - bars, fills, valuations, halts, limit changes, malformed requests - every
order request gets exactly one decision, an approval always travels with exactly one
PlaceOrder, and nothing is approved while HALTED.
"""
from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas as s
from agents.context import Context
from risk.checks import CHECKS
from risk.engine import RiskStage
from risk.limits import RiskLimits
from risk.var import var_cvar
from tests import factories as f

SYMBOLS = ("AAA", "BBB", "CCC")
NS = 1_000_000_000

symbols = st.sampled_from(SYMBOLS)
sides = st.sampled_from(("BUY", "SELL", "BUY", "SELL", "HOLD"))
# Mostly orders small enough to pass, some far too big, a few malformed (zero, negative).
quantities = st.one_of(st.decimals(min_value=1, max_value=50, places=0),
                       st.decimals(min_value=-10, max_value=3000, places=0))
prices = st.floats(min_value=0.0, max_value=500.0, allow_nan=False)

actions = st.one_of(
    st.tuples(st.just("bar"), symbols, st.floats(min_value=0.5, max_value=500.0)),
    st.tuples(st.just("order"), symbols, sides, quantities, prices, st.booleans()),
    st.tuples(st.just("fill"), symbols, st.sampled_from(("BUY", "SELL")),
              st.decimals(min_value=1, max_value=2000, places=0), st.integers(0, 30)),
    st.tuples(st.just("value"), st.decimals(min_value=0, max_value=2_000_000, places=2),
              st.decimals(min_value=0, max_value=Decimal("0.3"), places=3)),
    st.tuples(st.just("kill"), st.booleans()),
    st.tuples(st.just("release")),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("limit"), st.sampled_from(
        ("max_symbol_exposure", "max_gross_exposure", "var_lookback", "kill_switch", "nope")),
        st.sampled_from(("0.5", "2", "true", "false", "-1", "x"))),
)
steps = st.lists(st.tuples(st.integers(0, 2 * 86400), actions), max_size=60)


def build(step: int, ts: int, action: tuple, approved: list[str]) -> s.Event:
    """The event an action stands for; ids come from the step so examples replay exactly."""
    head = f.header(ts, "test", event_id=f"p{step}")
    kind = action[0]
    if kind == "bar":
        return s.Bar(**head, symbol=action[1], open=action[2], high=action[2], low=action[2],
                     close=action[2], volume=1.0)
    if kind == "order":
        _, symbol, side, quantity, ref_price, reduce_only = action
        return s.SubmitOrder(**head, client_order_id=f"c{step}", account=f.ACCOUNT,
                             strategy="prop", symbol=symbol, side=side, quantity=quantity,
                             ref_price=ref_price, reduce_only=reduce_only)
    if kind == "fill":
        _, symbol, side, quantity, pick = action
        cid = approved[pick % len(approved)] if approved else f"x{step}"
        return s.FillExecuted(**head, fill_id=f"f{step}", client_order_id=cid, broker_order_id="b",
                              account=f.ACCOUNT, strategy="prop", symbol=symbol, side=side,
                              quantity=quantity, price=Decimal("100"), commission=Decimal(0),
                              leaves_quantity=Decimal(0))
    if kind == "value":
        _, equity, drawdown = action
        return s.PortfolioValued(**head, account=f.ACCOUNT, cash=equity, equity=equity,
                                 gross_exposure=Decimal(0), net_exposure=Decimal(0),
                                 realized_pnl=Decimal(0), unrealized_pnl=Decimal(0),
                                 commissions=Decimal(0), high_water_mark=equity,
                                 drawdown=drawdown)
    if kind == "kill":
        event_type = s.KillSwitchEngaged if action[1] else s.KillSwitchReleased
        return event_type(**head, account=f.ACCOUNT, reason="prop")
    if kind == "release":
        return s.HaltReleased(**head, account=f.ACCOUNT, reason="prop")
    if kind == "cancel":
        cid = approved[action[1] % len(approved)] if approved else f"x{step}"
        return s.OrderCanceled(**head, client_order_id=cid, account=f.ACCOUNT, symbol="AAA",
                               reason="prop")
    return s.LimitChanged(**head, account=f.ACCOUNT, name=action[1], value=action[2])


def replay(sequence, limits: RiskLimits):
    """Feed the sequence; yield (request, state before it, events it caused) per order."""
    stage = RiskStage(Context(f.RUN, "risk"), limits, Decimal("1000000"))
    routes = stage.routes()
    for symbol in SYMBOLS:   # enough history for VaR, so approvals are possible at all
        for bar in f.bars_from_closes([100.0, 101.0, 100.0, 99.0, 100.0], symbol,
                                      start=f.T0 - 10 * f.MINUTE, step=f.MINUTE):
            routes[s.Bar](bar)
    ts, approved = f.T0, []
    for step, (dt, action) in enumerate(sequence):
        ts += dt * NS
        event = build(step, ts, action, approved)
        before = stage.trading_state
        out = list(routes[type(event)](event))
        if isinstance(event, s.SubmitOrder):
            approved += [e.client_order_id for e in out if isinstance(e, s.OrderApproved)]
            yield event, before, out


@settings(max_examples=150, deadline=None)
@given(steps)
def test_order_request_when_any_history_then_exactly_one_decision(sequence):
    for request, _, out in replay(sequence, RiskLimits(var_min_history=3)):
        decisions = [e for e in out if isinstance(e, (s.OrderApproved, s.OrderDenied))]
        assert len(decisions) == 1
        (decision,) = decisions
        assert decision.client_order_id == request.client_order_id
        assert [c.name for c in decision.checks] == [name for name, _ in CHECKS]
        if isinstance(decision, s.OrderDenied):
            assert decision.reasons and all(decision.reasons)
            assert not any(isinstance(e, s.PlaceOrder) for e in out)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_approval_when_emitted_then_exactly_one_place_order_with_same_id(sequence):
    for request, _, out in replay(sequence, RiskLimits(var_min_history=3)):
        approvals = [e for e in out if isinstance(e, s.OrderApproved)]
        places = [e for e in out if isinstance(e, s.PlaceOrder)]
        assert len(places) == len(approvals)
        for approval, place in zip(approvals, places):
            assert place.client_order_id == approval.client_order_id == request.client_order_id
            assert place.decision_id == approval.event_id
            assert all(check.passed for check in approval.checks)


@settings(max_examples=150, deadline=None)
@given(steps, st.booleans())
def test_approval_when_halted_then_never_emitted(sequence, start_engaged):
    limits = RiskLimits(var_min_history=3, kill_switch=start_engaged)
    for _, before, out in replay(sequence, limits):
        for approval in (e for e in out if isinstance(e, s.OrderApproved)):
            assert before != "HALTED"
            assert approval.trading_state != "HALTED"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=300),
       st.sampled_from((0.5, 0.8, 0.9, 0.95, 0.975, 0.99)))
def test_var_cvar_when_any_scenarios_then_matches_numpy_higher_quantile(pnl, confidence):
    losses = -np.array(pnl)
    expected_var = float(np.quantile(losses, confidence, method="higher"))
    var, cvar = var_cvar(np.array(pnl), confidence)
    assert var == max(expected_var, 0.0)
    assert cvar >= var
