"""ProposedOrder: an order request with the figures the checks read, each computed once.

Gross exposure and VaR need every committed position valued at its mark. They are read
from the incrementally kept ExposureBook (the fast path); while some held position is
irregular (see risk.valuation) or a history is too short to estimate a tail, they are
computed afresh symbol by symbol (the reference path), which also words the errors.
Both paths give the same gross notional exactly; VaR and CVaR may differ in the last bits
because the fast path sums the scenario P&L over symbols in a different order.
"""
from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any, Generic, TypeVar

from risk.limits import RiskLimits
from risk.state import ZERO, AccountBook, TradingState, signed
from risk.valuation import MICRO_PLACES, MIN_TERM_EXPONENT
from risk.var import held_scenario_pnl, scenario_pnl, var_cvar
from schemas.orders import SubmitOrder

T = TypeVar("T")
# Sums in this context never round, so a fast-path sum can be compared with 28 digits.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
# Decimal's default precision: the reference path's sum is exact up to this many digits.
_DEFAULT_DIGITS = 28


class derived(Generic[T]):   # noqa: N801 - used like @property
    """Like functools.cached_property without its lock (3.11 takes one per first read).

    The value is stored in the instance dict on the first read, which then shadows this
    descriptor; a call that raises stores nothing, so it raises again on the next read.
    """

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self   # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.func(instance)
        return value


class ProposedOrder:
    """An order request together with the account it would change, as the checks see it.

    Derived figures are computed on first use; one that raises (say, no price for a held
    symbol) raises again in every check that needs it, so each of those fails on its own.
    """

    def __init__(self, request: SubmitOrder, book: AccountBook, trading: TradingState,
                 limits: RiskLimits) -> None:
        self.request = request
        self.book = book
        self.trading = trading
        self.limits = limits
        self.now = request.ts_event

    @derived
    def delta(self) -> Decimal:
        """The signed quantity (BUY > 0)."""
        return signed(self.request.side, self.request.quantity)

    @derived
    def price(self) -> Decimal | None:
        """The price the order is valued at: its limit price, else the mark, else ref_price."""
        request = self.request
        if positive(request.limit_price):
            return request.limit_price
        mark = self.book.mark_price(request.symbol)
        if mark is not None:
            return mark
        if request.ref_price > 0 and request.ref_price != float("inf"):
            return Decimal(repr(request.ref_price))
        return None

    @derived
    def committed(self) -> Decimal:
        """The symbol's position plus its open orders, before this order."""
        return self.book.committed(self.request.symbol)

    @derived
    def reducing(self) -> bool:
        """True when the order only shrinks the committed position (fills + open orders).

        A reduce_only flag is checked, not trusted: an order that would open or flip a
        position is not reducing whatever it claims.
        """
        committed = self.committed
        delta = self.delta
        return (positive(self.request.quantity) and committed != 0
                and (committed > 0) != (delta > 0) and abs(delta) <= abs(committed))

    @derived
    def post_position(self) -> Decimal:
        """The symbol's signed position once its open orders and this one have filled."""
        return self.committed + self.delta

    @derived
    def post_trade(self) -> dict[str, Decimal]:
        """Signed position per symbol once every open order and this one have filled."""
        positions = self.book.committed_all()
        symbol = self.request.symbol
        positions[symbol] = positions.get(symbol, ZERO) + self.delta
        return positions

    def price_of(self, symbol: str) -> Decimal:
        """The valuation price of `symbol`; ValueError when none is known."""
        price = self.price if symbol == self.request.symbol else self.book.mark_price(symbol)
        if price is None:
            raise ValueError(f"no price for {symbol}")
        return price

    @derived
    def gross_notional(self) -> Decimal:
        """Sum over symbols of |post-trade position| x price."""
        if not self._others_regular():
            return self._gross_by_symbol()
        symbol = self.request.symbol
        exposure = self.book.exposure
        others = exposure.gross_micros - exposure.micros_of(symbol)
        post = self.post_position
        term = abs(post) * self.price_of(symbol) if post else ZERO
        if not term.is_finite():
            return self._gross_by_symbol()
        gross = _EXACT.add(Decimal(others).scaleb(-MICRO_PLACES, _EXACT), term)
        # The reference path adds 28-digit Decimals one symbol at a time. Its terms are
        # never negative, so if the exact total fits 28 digits at the finest exponent any
        # term can have, every partial sum fits too and that path rounded nothing.
        finest = min(MIN_TERM_EXPONENT, term.as_tuple().exponent)
        if gross.adjusted() - finest >= _DEFAULT_DIGITS:
            return self._gross_by_symbol()
        return gross

    @derived
    def tail_risk(self) -> tuple[float, float]:
        """(VaR, CVaR) of the post-trade positions as fractions of equity."""
        equity = self.book.equity
        if equity <= 0:
            raise ValueError(f"equity {equity} is not positive")
        pnl = self._held_pnl() if self._others_regular() else None
        if pnl is None:
            exposures = {s: float(q * self.price_of(s)) for s, q in self.post_trade.items() if q}
            pnl = scenario_pnl(exposures, self.book.history, self.limits.var_min_history)
        var, cvar = var_cvar(pnl, self.limits.var_confidence)
        return var / float(equity), cvar / float(equity)

    def _others_regular(self) -> bool:
        """Brings the kept valuations up to date; True when every held symbol other than
        this order's is on the fast path (this order's is valued here in any case)."""
        exposure = self.book.exposure
        exposure.refresh()
        irregular = exposure.irregular
        return not irregular or (len(irregular) == 1 and self.request.symbol in irregular)

    def _gross_by_symbol(self) -> Decimal:
        return sum((abs(q) * self.price_of(s) for s, q in self.post_trade.items() if q),
                   start=ZERO)

    def _held_pnl(self):
        """Scenario P&L from the kept exposures with this order's symbol replaced, or None
        when the reference path must decide (short or missing history)."""
        symbol = self.request.symbol
        post = self.post_position
        exposure = self.book.exposure.exposures()
        own = float(post * self.price_of(symbol)) if post else 0.0
        row = self.book.history.rows.get(symbol)
        if row is None:
            if own != 0.0:
                return None   # held without a single bar: the reference path names it
        else:
            exposure[row] = own
        return held_scenario_pnl(exposure, self.book.history, self.limits.var_min_history)


def positive(value: Decimal | None) -> bool:
    """True for a finite Decimal above zero (None, NaN, infinities and <= 0 are not)."""
    return value is not None and value.is_finite() and value > 0
