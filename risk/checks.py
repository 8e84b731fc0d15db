"""The pre-trade checks: each a small function from a proposed order to a CheckResult.

Every check runs on every request (no short-circuit), so a decision lists each check with
the value it saw and the limit it applied. A check that raises becomes a failed result
(`run_checks`), so an unexpected input denies the order instead of dropping it.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from datetime import time as clock_time
from decimal import Decimal

from risk.limits import RiskLimits, limit_texts
from risk.proposal import ProposedOrder, positive
from risk.state import KILL_SWITCH, NEW_YORK
from risk.var import InsufficientHistory
from schemas.orders import BUY, LIMIT, MARKET, SELL, STOP
from schemas.risk import ACTIVE, HALTED, REDUCING, CheckResult

NS = 1_000_000_000
RATE_WINDOW_NS = 60 * NS
REDUCING_REASON = "reducing"
_SIX_PLACES = Decimal("0.000001")
# Below this a float's 6-place text has far fewer than the 28 digits a quantize allows
# (beyond them quantize raises), so the float formatting may stand in for the Decimal.
_FLOAT_TEXT_BOUND = 1e15
_OPEN, _CLOSE = clock_time(9, 30), clock_time(16, 0)

Check = Callable[[ProposedOrder, RiskLimits], CheckResult]


def check_trading_state(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """HALTED denies everything; REDUCING denies what does not reduce a position."""
    state = order.trading.state
    if state == ACTIVE:
        return CheckResult("trading_state", True, state, ACTIVE)
    if state == REDUCING and order.reducing:
        return CheckResult("trading_state", True, state, ACTIVE, REDUCING_REASON)
    what = "halted" if state == HALTED else "reducing only, order does not reduce"
    return CheckResult("trading_state", False, state, ACTIVE,
                       f"trading {what} ({order.trading.describe()})")


def check_kill_switch(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """The operator's kill switch denies every order while engaged."""
    halt = order.trading.halts.get(KILL_SWITCH)
    if halt is None:
        return CheckResult("kill_switch", True, "released", "released")
    return CheckResult("kill_switch", False, "engaged", "released",
                       f"kill switch engaged: {halt.detail}")


def check_order_terms(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """The request is well formed: side, positive quantity, priced order types, new id."""
    request = order.request
    problems = []
    if request.side not in (BUY, SELL):
        problems.append(f"side {request.side!r} is not BUY or SELL")
    if not positive(request.quantity):
        problems.append(f"quantity {request.quantity} is not positive")
    if request.order_type not in (MARKET, LIMIT, STOP):
        problems.append(f"order type {request.order_type!r} is unknown")
    if request.order_type == LIMIT and not positive(request.limit_price):
        problems.append("LIMIT order without a positive limit_price")
    if request.order_type == STOP and not positive(request.stop_price):
        problems.append("STOP order without a positive stop_price")
    if request.client_order_id in order.book.open_orders:
        problems.append(f"client_order_id {request.client_order_id} is already open")
    limit = "BUY|SELL, quantity > 0, priced LIMIT/STOP, new client_order_id"
    if problems:
        return CheckResult("order_terms", False, "invalid", limit, "; ".join(problems))
    return CheckResult("order_terms", True, "valid", limit)


def check_price_known(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """Without a price no notional or exposure can be known: deny."""
    price = order.price
    if price is None:
        return CheckResult("price_known", False, "unknown", "> 0",
                           f"no mark, limit price or ref_price for {order.request.symbol}")
    return CheckResult("price_known", True, str(price), "> 0")


def check_portfolio_fresh(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """Equity older than max_valuation_age_s cannot be trusted for exposure ratios."""
    limit = limit_texts(limits).max_valuation_age_s
    valued = order.book.valuation_ts
    if valued is None:
        return CheckResult("portfolio_fresh", False, "missing", limit, "no portfolio valuation")
    age, text = _age(order.now - valued)
    if age > limits.max_valuation_age_s:
        return CheckResult("portfolio_fresh", False, text, limit,
                           f"stale portfolio: valued {age} s before the order, limit {limit} s")
    return CheckResult("portfolio_fresh", True, text, limit)


def check_order_quantity(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """One order may not exceed max_order_quantity units."""
    quantity, limit = order.request.quantity, limits.max_order_quantity
    text = limit_texts(limits).max_order_quantity
    if quantity > limit:
        return CheckResult("order_quantity", False, str(quantity), text,
                           f"quantity {quantity} above max_order_quantity {limit}")
    return CheckResult("order_quantity", True, str(quantity), text)


def check_order_notional(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """One order may not exceed max_order_notional in money."""
    limit = limits.max_order_notional
    text = limit_texts(limits).max_order_notional
    if order.price is None:
        return _unpriced("order_notional", text, order)
    notional = order.request.quantity * order.price
    if notional > limit:
        return CheckResult("order_notional", False, str(notional), text,
                           f"notional {notional} above max_order_notional {limit}")
    return CheckResult("order_notional", True, str(notional), text)


def check_symbol_exposure(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """|post-trade position incl. open orders| x price, as a fraction of equity."""
    texts = limit_texts(limits)
    if order.price is None:
        return _unpriced("symbol_exposure", texts.max_symbol_exposure, order)
    notional = abs(order.post_position) * order.price
    return _within_fraction("symbol_exposure", notional, texts.max_symbol_exposure,
                            texts.symbol_exposure_fraction, order, "exposure")


def check_gross_exposure(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """Sum over symbols of |post-trade position| x mark, as a fraction of equity."""
    texts = limit_texts(limits)
    if order.price is None:
        return _unpriced("gross_exposure", texts.max_gross_exposure, order)
    return _within_fraction("gross_exposure", order.gross_notional, texts.max_gross_exposure,
                            texts.gross_exposure_fraction, order, None)


def check_min_equity(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """Below min_equity the account may only reduce."""
    equity, limit = order.book.equity, limits.min_equity
    text = limit_texts(limits).min_equity
    if order.reducing:
        return CheckResult("min_equity", True, str(equity), text, REDUCING_REASON)
    if equity >= limit:
        return CheckResult("min_equity", True, str(equity), text)
    return CheckResult("min_equity", False, str(equity), text,
                       f"equity {equity} below min_equity {limit}")


def check_order_rate(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """At most max_orders_per_minute approvals in any 60 s of event time."""
    count = order.book.approvals_within(order.now, RATE_WINDOW_NS)
    limit = limits.max_orders_per_minute
    text = limit_texts(limits).max_orders_per_minute
    if count >= limit:
        return CheckResult("order_rate", False, str(count), text,
                           f"{count} orders approved in the last 60 s, limit {limit} per minute")
    return CheckResult("order_rate", True, str(count), text)


def check_trading_hours(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """When enabled, orders only 09:30-16:00 New York time on weekdays (holidays not known)."""
    limit = "09:30-16:00 America/New_York, Mon-Fri"
    if not limits.regular_hours_only:
        return CheckResult("trading_hours", True, "off", "off")
    local = datetime.fromtimestamp(order.now // NS, NEW_YORK)
    value = local.strftime("%a %H:%M")
    if local.weekday() < 5 and _OPEN <= local.time() < _CLOSE:
        return CheckResult("trading_hours", True, value, limit)
    return CheckResult("trading_hours", False, value, limit,
                       f"outside regular hours: {local.isoformat()}")


def check_var(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """1-day historical VaR of the post-trade positions within var_budget of equity."""
    return _tail_check("var", 0, limits.var_budget, limit_texts(limits).var_budget, order)


def check_cvar(order: ProposedOrder, limits: RiskLimits) -> CheckResult:
    """1-day historical CVaR (expected shortfall) within cvar_budget of equity."""
    return _tail_check("cvar", 1, limits.cvar_budget, limit_texts(limits).cvar_budget, order)


# The order the checks appear in every decision. run_checks reads this at call time.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("trading_state", check_trading_state),
    ("kill_switch", check_kill_switch),
    ("order_terms", check_order_terms),
    ("price_known", check_price_known),
    ("portfolio_fresh", check_portfolio_fresh),
    ("order_quantity", check_order_quantity),
    ("order_notional", check_order_notional),
    ("symbol_exposure", check_symbol_exposure),
    ("gross_exposure", check_gross_exposure),
    ("min_equity", check_min_equity),
    ("order_rate", check_order_rate),
    ("trading_hours", check_trading_hours),
    ("var", check_var),
    ("cvar", check_cvar),
)


def run_checks(order: ProposedOrder, limits: RiskLimits) -> tuple[CheckResult, ...]:
    """Every check's result, in CHECKS order; a check that raises fails (closed)."""
    results = []
    for name, check in CHECKS:
        try:
            results.append(check(order, limits))
        except Exception as exc:  # noqa: BLE001 - fail closed on anything, and say what
            results.append(CheckResult(name, False, "error", "n/a",
                                       f"check raised: {type(exc).__name__}: {exc}"))
    return tuple(results)


def ratio_text(ratio: Decimal | float) -> str:
    """A ratio rounded to 6 places without trailing zeros ("0.1234")."""
    if ratio.__class__ is float and -_FLOAT_TEXT_BOUND < ratio < _FLOAT_TEXT_BOUND:
        # Both round the float's exact binary value half-even to 6 places, and format
        # with a decimal point and no exponent; "%.6f" does it without making a Decimal.
        text = f"{ratio:.6f}"
    else:
        text = f"{Decimal(ratio).quantize(_SIX_PLACES):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _within_fraction(name: str, notional: Decimal, limit: str, fraction: Decimal,
                     order: ProposedOrder, what: str | None) -> CheckResult:
    """`limit` is the limit's text, `fraction` its exact value; `what` names the figure
    in a denial, None for gross exposure ("<symbol> exposure" otherwise)."""
    equity = order.book.equity
    if equity <= 0:
        if order.reducing:
            return CheckResult(name, True, "n/a", limit, REDUCING_REASON)
        return CheckResult(name, False, "n/a", limit, f"equity {equity} is not positive")
    ratio = notional / equity
    value = ratio_text(ratio)
    if order.reducing:
        return CheckResult(name, True, value, limit, REDUCING_REASON)
    if ratio <= fraction:
        return CheckResult(name, True, value, limit)
    what = "gross exposure" if what is None else f"{order.request.symbol} {what}"
    return CheckResult(name, False, value, limit,
                       f"{what} {value} of equity above limit {limit}")


def _tail_check(name: str, which: int, budget: float, limit: str,
                order: ProposedOrder) -> CheckResult:
    """`limit` is the text of `budget`."""
    if order.price is None:
        return _unpriced(name, limit, order)
    try:
        value = order.tail_risk[which]
    except InsufficientHistory as exc:
        if order.reducing:
            return CheckResult(name, True, "insufficient history", limit, REDUCING_REASON)
        return CheckResult(name, False, "insufficient history", limit,
                           f"{name}: insufficient return history ({exc})")
    text = ratio_text(value)
    if order.reducing:
        return CheckResult(name, True, text, limit, REDUCING_REASON)
    if value <= budget:
        return CheckResult(name, True, text, limit)
    return CheckResult(name, False, text, limit,
                       f"1-day {name} {text} of equity above budget {budget}")


# Valuation age (ns) -> (age in seconds, its text): a backtest sees a handful of ages.
_AGES: dict[int, tuple[Decimal, str]] = {}
_MAX_AGES = 4096


def _age(ns: int) -> tuple[Decimal, str]:
    """`ns` nanoseconds as an exact Decimal number of seconds, and its text."""
    known = _AGES.get(ns)
    if known is None:
        if len(_AGES) >= _MAX_AGES:
            _AGES.clear()
        age = Decimal(ns) / NS
        known = _AGES[ns] = (age, str(age))
    return known


def _unpriced(name: str, limit: str, order: ProposedOrder) -> CheckResult:
    return CheckResult(name, False, "unknown", limit,
                       f"{name}: price of {order.request.symbol} unknown")
