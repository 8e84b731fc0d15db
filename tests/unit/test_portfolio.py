from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.context import Context
from agents.portfolio import PortfolioStage, Sleeve
from schemas import PortfolioValued, PositionChanged
from tests import factories as f


def make_portfolio(cash="100000"):
    return PortfolioStage(Context("run", "portfolio"), Decimal(cash))


def test_book_round_trip_when_bought_and_sold_then_realized_is_price_difference_minus_costs():
    p = make_portfolio()
    p.on_fill(f.fill(side="BUY", quantity="100", price="50.25", commission="1.50"))
    (change,) = p.on_fill(f.fill(side="SELL", quantity="100", price="51.10", commission="1.25"))
    assert isinstance(change, PositionChanged)
    assert change.quantity == 0
    assert change.realized_pnl == (Decimal("51.10") - Decimal("50.25")) * 100 - Decimal("2.75")
    assert p.cash == Decimal("100000") + Decimal("85.00") - Decimal("2.75")


def test_close_lots_when_partially_sold_then_fifo_lots_give_exact_realized_pnl():
    s = Sleeve()
    s.apply(Decimal(100), Decimal("10.00"), Decimal(0))
    s.apply(Decimal(100), Decimal("11.00"), Decimal(0))
    s.apply(Decimal(-150), Decimal("12.00"), Decimal(0))
    # 100 from the first lot (+2 each) and 50 from the second (+1 each)
    assert s.realized == Decimal("250.00")
    assert s.quantity == 50
    assert s.avg_price() == Decimal("11.000000")


def test_flip_position_when_sell_exceeds_long_then_remainder_opens_short():
    s = Sleeve()
    s.apply(Decimal(100), Decimal("10"), Decimal(0))
    s.apply(Decimal(-160), Decimal("9"), Decimal(0))
    assert s.realized == Decimal("-100")
    assert s.quantity == -60
    assert list(s.lots) == [[Decimal(-60), Decimal("9")]]


def test_value_account_when_time_advances_then_previous_instant_is_valued_at_its_closes():
    p = make_portfolio()
    assert p.on_bar(f.bar("AAA", ts=f.T0, open=100.0, close=100.0)) == ()
    p.on_fill(f.fill(symbol="AAA", side="BUY", quantity="10", price="100", ts=f.T0))
    (valued,) = p.on_bar(f.bar("AAA", ts=f.T0 + f.DAY, open=120.0, close=150.0))
    assert isinstance(valued, PortfolioValued)
    assert valued.ts_event == f.T0                    # as of the previous instant
    assert valued.equity == Decimal("100000")         # marked at 100, not at the new 150
    (final,) = p.finish(f.bar("AAA", ts=f.T0 + f.DAY))
    assert final.equity == Decimal("100000") + 10 * Decimal("50")
    assert final.unrealized_pnl == Decimal("500")


def test_track_drawdown_when_equity_falls_then_high_water_mark_is_kept():
    p = make_portfolio("1000")
    p.on_bar(f.bar("AAA", ts=f.T0, close=10.0))
    p.on_fill(f.fill(symbol="AAA", quantity="50", price="10"))
    p.on_bar(f.bar("AAA", ts=f.T0 + 1, close=12.0))
    (up,) = p.on_bar(f.bar("AAA", ts=f.T0 + 2, close=8.0))
    (down,) = p.on_bar(f.bar("AAA", ts=f.T0 + 3, close=8.0))
    assert up.high_water_mark == Decimal("1100") and up.drawdown == 0
    assert down.equity == Decimal("900")
    assert down.drawdown == (Decimal(200) / Decimal(1100)).quantize(Decimal("0.000000000001"))


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2)
fills = st.lists(st.tuples(st.sampled_from(["AAA", "BBB", "CCC"]), st.sampled_from(["BUY", "SELL"]),
                           st.integers(1, 500), prices,
                           st.decimals(min_value=0, max_value=5, places=3)),
                 min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(fills=fills, marks=st.lists(prices, min_size=3, max_size=3))
def test_value_account_when_random_fills_then_equity_is_cash_plus_marked_positions(fills, marks):
    p = make_portfolio("50000")
    mark = dict(zip(["AAA", "BBB", "CCC"], marks))
    for symbol in mark:
        p.on_bar(f.bar(symbol, ts=f.T0, close=float(mark[symbol])))
    cash = Decimal("50000")
    for symbol, side, qty, price, fee in fills:
        p.on_fill(f.fill(symbol=symbol, side=side, quantity=str(qty), price=str(price),
                         commission=str(fee)))
        cash -= (qty if side == "BUY" else -qty) * price + fee
    (valued,) = p.finish(f.bar("AAA", ts=f.T0))
    positions = {s: Decimal(0) for s in mark}
    for symbol, side, qty, _, _ in fills:
        positions[symbol] += qty if side == "BUY" else -qty
    assert valued.cash == cash
    assert valued.equity == cash + sum(positions[s] * mark[s] for s in mark)
    realized = sum((s.realized for s in p.sleeves.values()), Decimal(0))
    assert valued.equity - Decimal("50000") == realized + valued.unrealized_pnl


def test_exact_price_when_seen_again_or_not_a_positive_float_then_decimal_of_its_repr():
    from agents.prices import exact_price
    # repeated (memoized), an int equal to a float, both zeros, negatives, odd magnitudes
    values = [101.25, 101.25, 100.0, 100, 0.0, -0.0, -3.5, 1e16, 5e-324, 0.1, 0.1,
              float("inf"), float("nan")]
    for x in values:
        assert str(exact_price(x)) == str(Decimal(repr(x))), x
