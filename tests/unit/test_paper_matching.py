"""Pure price, quantity and cost rules of the paper broker, and its config validation."""
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.paper.config import ExecutionConfig
from connectors.paper.costs import commission, slipped_price, slippage_factor
from connectors.paper.matching import (
    BarPrices, bar_prices, fill_quantity, match_price, reach_bounds, to_price,
)

TICK = Decimal("0.0001")
CENT = Decimal("0.01")


def prices(open_, high, low) -> BarPrices:
    return BarPrices(Decimal(open_), Decimal(high), Decimal(low))


def test_to_price_when_float_from_file_then_exact_decimal_on_grid():
    assert to_price(101.25, TICK) == Decimal("101.25")
    assert str(to_price(101.25, TICK)) == "101.2500"
    # 0.1 + 0.2 is 0.30000000000000004 as a float; the grid makes it the price a venue shows.
    assert to_price(0.1 + 0.2, TICK) == Decimal("0.3")


def test_to_price_when_exactly_half_a_tick_then_rounds_half_even():
    assert to_price(1.00005, TICK) == Decimal("1.0000")
    assert to_price(1.00015, TICK) == Decimal("1.0002")
    assert to_price(0.125, CENT) == Decimal("0.12")
    assert to_price(0.135, CENT) == Decimal("0.14")


def test_bar_prices_when_a_price_is_nan_then_none():
    assert bar_prices(float("nan"), 1.0, 1.0, TICK) is None
    assert bar_prices(1.0, 2.0, 0.5, TICK) == prices("1", "2", "0.5")


def test_match_market_when_any_bar_then_fills_at_open():
    assert match_price("BUY", "MARKET", None, None, prices("10", "12", "9"), TICK) == 10
    assert match_price("SELL", "MARKET", None, None, prices("10", "12", "9"), TICK) == 10


@pytest.mark.parametrize(("side", "limit", "bar", "expected"), [
    ("BUY", "9.5", ("10", "12", "9"), "9.5"),     # trades down to the limit
    ("BUY", "9.5", ("9", "9.8", "8"), "9"),       # gaps below the limit: better price, the open
    ("BUY", "8.5", ("10", "12", "9"), None),      # low never reaches the limit
    ("SELL", "11", ("10", "12", "9"), "11"),
    ("SELL", "11", ("12", "13", "11.5"), "12"),   # gaps above the limit: the open
    ("SELL", "12.5", ("10", "12", "9"), None),
])
def test_match_limit_when_bar_range_given_then_fills_at_better_of_open_and_limit(
        side, limit, bar, expected):
    price = match_price(side, "LIMIT", Decimal(limit), None, prices(*bar), TICK)
    assert price == (None if expected is None else Decimal(expected))


@pytest.mark.parametrize(("side", "stop", "bar", "expected"), [
    ("BUY", "11", ("10", "12", "9"), "11"),       # trades up through the stop
    ("BUY", "11", ("11.5", "12", "11.2"), "11.5"),  # gaps above the stop: worse price, the open
    ("BUY", "12.5", ("10", "12", "9"), None),     # high never reaches the stop
    ("SELL", "9.5", ("10", "12", "9"), "9.5"),
    ("SELL", "9.5", ("9", "9.2", "8"), "9"),      # gaps below the stop: the open
    ("SELL", "8.5", ("10", "12", "9"), None),
])
def test_match_stop_when_bar_range_given_then_fills_at_worse_of_open_and_stop(
        side, stop, bar, expected):
    price = match_price(side, "STOP", None, Decimal(stop), prices(*bar), TICK)
    assert price == (None if expected is None else Decimal(expected))


def test_match_stop_when_already_triggered_then_fills_at_open_like_market():
    bar = prices("10", "10.5", "9.8")
    assert match_price("BUY", "STOP", None, Decimal("11"), bar, TICK) is None
    assert match_price("BUY", "STOP", None, Decimal("11"), bar, TICK, triggered=True) == 10


def test_match_limit_when_limit_finer_than_tick_then_never_rounds_past_limit():
    bar = prices("10", "12", "9")
    assert match_price("BUY", "LIMIT", Decimal("9.00019"), None, bar, TICK) == Decimal("9.0001")
    assert match_price("SELL", "LIMIT", Decimal("11.00011"), None, bar, TICK) == Decimal(
        "11.0002")


order_types = st.sampled_from(["MARKET", "LIMIT", "STOP"])
sides = st.sampled_from(["BUY", "SELL"])
cents = st.integers(min_value=100, max_value=100_000).map(lambda c: Decimal(c) / 100)


@given(side=sides, order_type=order_types, a=cents, b=cents, c=cents, trigger=cents)
def test_match_price_when_any_order_and_bar_then_price_inside_bar_range(
        side, order_type, a, b, c, trigger):
    low, open_, high = sorted((a, b, c))
    bar = BarPrices(open_, high, low)
    price = match_price(side, order_type, trigger, trigger, bar, TICK)
    assert price is None or low <= price <= high
    if order_type == "LIMIT" and price is not None:
        assert price <= trigger if side == "BUY" else price >= trigger


prices_4dp = st.integers(min_value=1, max_value=10**7).map(lambda t: t / 10_000)


@given(side=sides, order_type=order_types, a=prices_4dp, b=prices_4dp, c=prices_4dp,
       trigger=st.integers(min_value=1, max_value=10**7).map(lambda t: Decimal(t) / 10_000))
def test_reach_bounds_when_exact_match_fills_then_float_precheck_lets_bar_through(
        side, order_type, a, b, c, trigger):
    low, open_, high = sorted((a, b, c))
    exact = match_price(side, order_type, trigger, trigger, bar_prices(open_, high, low, TICK),
                        TICK)
    max_low, min_high = reach_bounds(side, order_type, trigger, trigger, TICK)
    passes = low <= max_low and high >= min_high
    assert exact is None or passes


def test_reach_bounds_when_bar_far_from_limit_then_filtered_out():
    max_low, min_high = reach_bounds("BUY", "LIMIT", Decimal("95"), None, TICK)
    assert (max_low, min_high) == (95.0001, float("-inf"))
    assert reach_bounds("SELL", "STOP", None, Decimal("95"), TICK)[0] == 95.0001
    assert reach_bounds("BUY", "MARKET", None, None, TICK) == (float("inf"), float("-inf"))


def test_fill_quantity_when_no_cap_then_all_remaining():
    assert fill_quantity(Decimal(500), 10.0, 0.0) == 500


def test_fill_quantity_when_capped_then_floor_of_share_times_volume():
    assert fill_quantity(Decimal(500), 1234.0, 0.1) == 123
    # 0.29 * 100 is 28.999999999999996 in floats; the cap uses exact decimals, so 29.
    assert fill_quantity(Decimal(500), 100.0, 0.29) == 29
    assert fill_quantity(Decimal(50), 1000.0, 0.1) == 50


def test_fill_quantity_when_cap_below_one_share_or_no_volume_then_zero():
    assert fill_quantity(Decimal(500), 9.0, 0.1) == 0
    assert fill_quantity(Decimal(500), 0.0, 0.1) == 0
    assert fill_quantity(Decimal(500), float("nan"), 0.1) == 0


def test_slipped_price_when_buy_then_higher_and_when_sell_then_lower():
    factor = slippage_factor(10)  # 10 bps = 0.1%
    assert factor == Decimal("0.001")
    assert slipped_price(Decimal("100"), "BUY", factor, TICK) == Decimal("100.1")
    assert slipped_price(Decimal("100"), "SELL", factor, TICK) == Decimal("99.9")


def test_slipped_price_when_zero_bps_then_unchanged():
    assert slipped_price(Decimal("101.25"), "BUY", slippage_factor(0), TICK) == Decimal("101.25")


def test_commission_when_first_fill_then_per_order_fee_added_once():
    first = commission(Decimal(100), Decimal("0.005"), Decimal("1"), first_fill=True)
    later = commission(Decimal(100), Decimal("0.005"), Decimal("1"), first_fill=False)
    assert (first, later) == (Decimal("1.5"), Decimal("0.5"))


def test_config_when_defaults_then_next_open_without_costs():
    config = ExecutionConfig()
    assert (config.fill, config.slippage_bps, config.latency_ns) == ("next_open", 0.0, 0)
    assert config.price_increment == TICK


@pytest.mark.parametrize(("field", "value"), [
    ("fill", "vwap"), ("slippage_bps", -1.0), ("slippage_bps", float("nan")),
    ("commission_per_share", Decimal("-0.01")), ("commission_per_order", Decimal("-1")),
    ("commission_per_share", 0.01), ("latency_ms", -5), ("max_volume_share", -0.1),
    ("max_volume_share", 1.5), ("price_increment", Decimal(0)),
])
def test_config_when_value_invalid_then_value_error_names_field(field, value):
    with pytest.raises(ValueError, match=field):
        ExecutionConfig(**{field: value})


def test_config_when_decoded_with_unknown_field_then_rejected():
    with pytest.raises(msgspec.ValidationError, match="slipage_bps"):
        msgspec.convert({"slipage_bps": 5}, ExecutionConfig)


def test_config_when_decoded_from_file_values_then_decimals_exact():
    config = msgspec.convert({"fill": "close", "commission_per_share": "0.005",
                              "max_volume_share": 0.1}, ExecutionConfig)
    assert config.commission_per_share == Decimal("0.005")
    assert config.fill == "close"
