"""Each pre-trade check: denies when breached, approves when not, and reports value and limit."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas as s
from agents.context import Context
from risk import checks
from risk.engine import RiskStage
from risk.limits import RiskLimits, with_limit
from risk.history import MarkHistory
from risk.var import InsufficientHistory, scenario_pnl, var_cvar
from tests import factories as f

EQUITY = "1000000"
# Generous limits so that each test breaches only the check it is about.
LOOSE = dict(var_min_history=5, var_budget=1.0, cvar_budget=1.0)


class Desk:
    """A RiskStage with a warmed-up market: alternating +-1% closes for the given symbols."""

    def __init__(self, equity: str = EQUITY, symbols=("AAA",), history: int = 10, **limits):
        self.stage = RiskStage(Context(f.RUN, "risk"), RiskLimits(**{**LOOSE, **limits}),
                               Decimal(equity))
        self.routes = self.stage.routes()
        for symbol in symbols:
            closes = [100.0 if i % 2 == 0 else 101.0 for i in range(history)] + [100.0]
            start = f.T0 - (len(closes) + 1) * f.MINUTE
            for bar in f.bars_from_closes(closes, symbol, start=start, step=f.MINUTE):
                self.send(bar)

    def send(self, event) -> list:
        return list(self.routes[type(event)](event))

    def decide(self, order: s.SubmitOrder) -> s.OrderApproved | s.OrderDenied:
        decisions = [e for e in self.send(order) if isinstance(e, (s.OrderApproved, s.OrderDenied))]
        assert len(decisions) == 1
        return decisions[0]


def valued(equity: str, drawdown: str = "0", ts: int = f.T0) -> s.PortfolioValued:
    return s.PortfolioValued(**f.header(ts, "portfolio"), account=f.ACCOUNT, cash=Decimal(equity),
                             equity=Decimal(equity), gross_exposure=Decimal(0),
                             net_exposure=Decimal(0), realized_pnl=Decimal(0),
                             unrealized_pnl=Decimal(0), commissions=Decimal(0),
                             high_water_mark=Decimal(equity), drawdown=Decimal(drawdown))


def result(decision, name: str) -> s.CheckResult:
    (found,) = [c for c in decision.checks if c.name == name]
    return found


def test_decide_when_request_is_ordinary_then_every_check_is_listed_in_order():
    decision = Desk().decide(f.submit_order())
    assert isinstance(decision, s.OrderApproved)
    assert [c.name for c in decision.checks] == [name for name, _ in checks.CHECKS]
    assert all(c.passed and c.value and c.limit for c in decision.checks)


def test_decide_when_quantity_above_limit_then_denied_with_value_and_limit():
    desk = Desk(max_order_quantity=Decimal(50))
    denied = desk.decide(f.submit_order(quantity="100"))
    check = result(denied, "order_quantity")
    assert isinstance(denied, s.OrderDenied)
    assert (check.passed, check.value, check.limit) == (False, "100", "50")
    assert check.reason in denied.reasons
    approved = desk.decide(f.submit_order(quantity="50"))
    assert isinstance(approved, s.OrderApproved)
    assert result(approved, "order_quantity").value == "50"


def test_decide_when_notional_above_limit_then_denied_with_value_and_limit():
    desk = Desk(max_order_notional=Decimal(5000))
    denied = desk.decide(f.submit_order(quantity="100"))
    check = result(denied, "order_notional")
    assert (check.passed, check.value, check.limit) == (False, "10000.0", "5000")
    assert isinstance(desk.decide(f.submit_order(quantity="50")), s.OrderApproved)


def test_decide_when_symbol_exposure_above_limit_then_denied_with_ratio():
    desk = Desk(max_gross_exposure=1.0)
    denied = desk.decide(f.submit_order(quantity="1500"))   # 150,000 of 1,000,000
    check = result(denied, "symbol_exposure")
    assert (check.passed, check.value, check.limit) == (False, "0.15", "0.1")
    assert "AAA exposure 0.15" in check.reason
    approved = desk.decide(f.submit_order(quantity="1000"))
    assert result(approved, "symbol_exposure").value == "0.1"


def test_decide_when_open_orders_count_towards_symbol_exposure_then_second_order_denied():
    desk = Desk(max_gross_exposure=1.0)
    assert isinstance(desk.decide(f.submit_order(quantity="600")), s.OrderApproved)
    denied = desk.decide(f.submit_order(quantity="600"))
    assert result(denied, "symbol_exposure").value == "0.12"


def test_decide_when_gross_exposure_above_limit_then_denied_with_sum_over_symbols():
    desk = Desk(symbols=("AAA", "BBB"), max_symbol_exposure=0.2, max_gross_exposure=0.3)
    desk.send(f.fill("BBB", quantity="2000", price="100"))   # 0.2 long BBB
    denied = desk.decide(f.submit_order("AAA", quantity="1500"))            # +0.15 AAA
    check = result(denied, "gross_exposure")
    assert (check.passed, check.value, check.limit) == (False, "0.35", "0.3")
    assert result(denied, "symbol_exposure").passed
    assert isinstance(desk.decide(f.submit_order("AAA", quantity="1000")), s.OrderApproved)


def test_decide_when_equity_below_minimum_then_increase_denied_and_reduction_approved():
    desk = Desk()
    desk.send(f.fill(quantity="10", price="100"))
    desk.send(valued("4000"))
    denied = desk.decide(f.submit_order(quantity="1"))
    check = result(denied, "min_equity")
    assert (check.passed, check.value, check.limit) == (False, "4000", "5000")
    approved = desk.decide(f.submit_order(side="SELL", quantity="5"))
    assert isinstance(approved, s.OrderApproved)
    assert result(approved, "min_equity").reason == "reducing"


def test_decide_when_rate_limit_reached_then_denied_until_window_slides():
    desk = Desk(max_orders_per_minute=2)
    for _ in range(2):
        assert isinstance(desk.decide(f.submit_order(quantity="1")), s.OrderApproved)
    denied = desk.decide(f.submit_order(quantity="1", ts=f.T0 + 59 * 10**9))
    check = result(denied, "order_rate")
    assert (check.passed, check.value, check.limit) == (False, "2", "2")
    later = desk.decide(f.submit_order(quantity="1", ts=f.T0 + 60 * 10**9))
    assert isinstance(later, s.OrderApproved)
    assert result(later, "order_rate").value == "0"


@pytest.mark.parametrize("ts, passed", [
    (f.T0, True),                               # Tue 09:30 New York
    (f.T0 - f.MINUTE, False),                   # Tue 09:29
    (f.T0 + 390 * f.MINUTE, False),             # Tue 16:00
    (f.T0 + 4 * f.DAY, False),                  # Sat 09:30
])
def test_decide_when_regular_hours_only_then_orders_outside_hours_denied(ts, passed):
    desk = Desk(regular_hours_only=True)
    desk.send(valued(EQUITY, ts=ts - 1))
    check = result(desk.decide(f.submit_order(quantity="1", ts=ts)), "trading_hours")
    assert check.passed is passed
    assert check.limit == "09:30-16:00 America/New_York, Mon-Fri"


def test_decide_when_regular_hours_not_enforced_then_hours_check_reports_off():
    check = result(Desk().decide(f.submit_order(quantity="1", ts=f.T0 + 12 * 60 * f.MINUTE)),
                   "trading_hours")
    assert (check.passed, check.value) == (True, "off")


def test_decide_when_var_above_budget_then_denied_with_var_and_budget():
    desk = Desk(var_budget=0.0005)
    denied = desk.decide(f.submit_order(quantity="1000"))   # 100,000 long, worst day -0.99%
    check = result(denied, "var")
    assert (check.passed, check.limit) == (False, "0.0005")
    assert float(check.value) == pytest.approx(100_000 * (1 - 100 / 101) / 1e6, abs=1e-6)
    assert isinstance(desk.decide(f.submit_order(quantity="50")), s.OrderApproved)


def test_decide_when_cvar_above_budget_then_denied_with_cvar_and_budget():
    desk = Desk(cvar_budget=0.0005)
    check = result(desk.decide(f.submit_order(quantity="1000")), "cvar")
    assert (check.passed, check.limit) == (False, "0.0005")
    assert float(check.value) > 0.0005


def test_decide_when_return_history_short_then_var_denies_unless_reducing():
    desk = Desk(history=3)
    denied = desk.decide(f.submit_order(quantity="10"))
    assert result(denied, "var").value == "insufficient history"
    assert "insufficient return history" in result(denied, "cvar").reason
    desk.send(f.fill(quantity="10", price="100"))
    approved = desk.decide(f.submit_order(side="SELL", quantity="10"))
    assert isinstance(approved, s.OrderApproved)
    assert result(approved, "var").reason == "reducing"


def test_decide_when_no_price_known_then_denied_with_price_known_failed():
    desk = Desk(symbols=())
    denied = desk.decide(f.submit_order("ZZZ", ref_price=0.0))
    assert isinstance(denied, s.OrderDenied)
    assert result(denied, "price_known").passed is False
    assert "no mark, limit price or ref_price for ZZZ" in denied.reasons
    assert result(denied, "order_notional").value == "unknown"


def test_decide_when_only_ref_price_known_then_priced_at_ref_price():
    desk = Desk(symbols=(), var_min_history=2)
    decision = desk.decide(f.submit_order("ZZZ", ref_price=12.5))
    assert result(decision, "price_known").value == "12.5"


def test_decide_when_valuation_is_stale_then_denied_as_stale_portfolio():
    desk = Desk()
    desk.send(valued(EQUITY, ts=f.T0 - 8 * f.DAY))
    denied = desk.decide(f.submit_order(quantity="1"))
    check = result(denied, "portfolio_fresh")
    assert (check.passed, check.value, check.limit) == (False, "691200", "604800")
    assert check.reason.startswith("stale portfolio")
    desk.send(valued(EQUITY, ts=f.T0))
    assert isinstance(desk.decide(f.submit_order(quantity="1")), s.OrderApproved)


def test_decide_when_terms_invalid_then_denied_and_other_checks_still_reported():
    denied = Desk().decide(f.submit_order(side="HOLD"))
    assert isinstance(denied, s.OrderDenied)
    assert "side 'HOLD' is not BUY or SELL" in result(denied, "order_terms").reason
    assert len(denied.checks) == len(checks.CHECKS)
    assert result(denied, "order_quantity").passed


def test_decide_when_a_check_raises_then_denied_with_the_error_and_others_reported(monkeypatch):
    def exploding(order, limits):
        raise ZeroDivisionError("boom")

    patched = tuple((name, exploding if name == "gross_exposure" else fn)
                    for name, fn in checks.CHECKS)
    monkeypatch.setattr(checks, "CHECKS", patched)
    denied = Desk().decide(f.submit_order(quantity="1"))
    assert isinstance(denied, s.OrderDenied)
    assert denied.reasons == ("check raised: ZeroDivisionError: boom",)
    assert [c.name for c in denied.checks] == [name for name, _ in patched]
    assert sum(not c.passed for c in denied.checks) == 1


def test_decide_when_order_reduces_over_limit_position_then_exposure_checks_pass_as_reducing():
    desk = Desk(max_symbol_exposure=0.1, max_gross_exposure=0.1)
    desk.send(f.fill(quantity="3000", price="100"))      # 0.3 of equity, far over both limits
    approved = desk.decide(f.submit_order(side="SELL", quantity="1000"))
    assert isinstance(approved, s.OrderApproved)
    for name in ("symbol_exposure", "gross_exposure", "var", "cvar", "min_equity"):
        assert result(approved, name).reason == "reducing"
    assert result(approved, "symbol_exposure").value == "0.2"
    # 2000 left once the first sell fills: selling 5000 flips to 0.3 short, not reducing.
    flip = desk.decide(f.submit_order(side="SELL", quantity="5000"))
    assert isinstance(flip, s.OrderDenied)
    assert result(flip, "symbol_exposure").reason.startswith("AAA exposure 0.3")


def test_decide_when_reduce_only_flag_but_no_position_then_not_treated_as_reducing():
    desk = Desk(max_symbol_exposure=0.1)
    denied = desk.decide(f.submit_order(side="SELL", quantity="1500", reduce_only=True))
    assert result(denied, "symbol_exposure").passed is False


def test_ratio_text_when_ratio_has_many_places_then_rounded_to_six_without_trailing_zeros():
    assert checks.ratio_text(Decimal("0.12340000")) == "0.1234"
    assert checks.ratio_text(Decimal("0.1234567")) == "0.123457"
    assert checks.ratio_text(Decimal(2)) == "2"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                 st.integers(-10**9, 10**9).map(lambda k: k / 10**7),
                 st.integers(-10**9, 10**9).map(lambda k: k / 2**20)))
def test_ratio_text_when_float_then_same_text_as_through_decimal(ratio):
    """Floats are printed without a Decimal; the text is the Decimal path's, exactly."""
    try:
        expected = f"{Decimal(ratio).quantize(Decimal('0.000001')):f}"
    except InvalidOperation:   # beyond quantize's 28 digits: the Decimal path raises too
        with pytest.raises(InvalidOperation):
            checks.ratio_text(ratio)
        return
    expected = expected.rstrip("0").rstrip(".") if "." in expected else expected
    assert checks.ratio_text(ratio) == expected


def test_var_cvar_when_loss_not_finite_then_value_error():
    for bad in (np.array([1.0, np.nan]), np.array([np.inf, 1.0]), np.array([-np.inf, 2.0]),
                np.array([1e308, 1e308, 1e308])):   # the last: finite, its sum is not
        with pytest.raises(ValueError, match="non-finite"), np.errstate(over="ignore"):
            var_cvar(bad, 0.95)


def test_var_cvar_when_losses_known_then_quantile_and_tail_mean():
    pnl = np.array([-10.0, -5.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    var, cvar = var_cvar(pnl, 0.8)
    assert (var, cvar) == (5.0, 7.5)


def history_of(closes: dict[str, list[float]], lookback: int = 250) -> MarkHistory:
    history = MarkHistory(lookback)
    for symbol, series in closes.items():
        for close in series:
            history.record_close(symbol, close)
    return history


def test_scenario_pnl_when_history_short_then_raises_naming_symbol():
    history = history_of({"AAA": [100.0, 110.0] * 3, "BBB": [100.0, 110.0]})
    with pytest.raises(InsufficientHistory, match="BBB has 1 returns"):
        scenario_pnl({"AAA": 1.0, "BBB": 2.0}, history, 3)


def test_limits_when_fraction_out_of_range_then_value_error_names_field():
    with pytest.raises(ValueError, match="max_drawdown"):
        RiskLimits(max_drawdown=1.5)
    with pytest.raises(ValueError, match="var_lookback"):
        RiskLimits(var_lookback=10, var_min_history=20)
    with pytest.raises(ValueError, match="max_order_notional"):
        RiskLimits(max_order_notional=1e6)


def test_with_limit_when_text_valid_then_copy_changed_and_original_kept():
    limits = RiskLimits()
    changed = with_limit(limits, "max_order_quantity", "42")
    assert changed.max_order_quantity == Decimal(42)
    assert limits.max_order_quantity == Decimal(100000)
    assert with_limit(limits, "regular_hours_only", "true").regular_hours_only is True
    with pytest.raises(ValueError, match="no_such_limit"):
        with_limit(limits, "no_such_limit", "1")
    with pytest.raises(ValueError, match="max_symbol_exposure"):
        with_limit(limits, "max_symbol_exposure", "-0.1")
