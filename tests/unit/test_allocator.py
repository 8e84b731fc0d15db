from decimal import Decimal

import pytest

from agents.aggregation import AggregationConfig, majority, weighted
from agents.allocator import AllocatorStage, OrderTerms
from agents.context import Context
from agents.sizing import SizingConfig, TradeRecord, target_shares
from schemas import OrderDenied, SignalGenerated, SubmitOrder
from schemas.signals import FLAT, LONG, SHORT
from tests import factories as f


def signal(strategy="sma_cross", symbol="AAA", direction=LONG, confidence=1.0, price=50.0,
           volatility=0.0):
    return SignalGenerated(**f.header(producer="strategy"), strategy=strategy, symbol=symbol,
                           direction=direction, confidence=confidence, price=price,
                           volatility=volatility)


def allocator(**kwargs):
    kwargs.setdefault("strategies", ["sma_cross", "momentum", "mean_reversion"])
    kwargs.setdefault("initial_equity", Decimal(1_000_000))
    return AllocatorStage(Context("run", "allocator"), **kwargs)


def test_request_order_when_signal_goes_long_then_buys_the_fixed_quantity():
    (order,) = allocator().on_signal(signal())
    assert isinstance(order, SubmitOrder)
    assert (order.side, order.quantity, order.strategy, order.ref_price) == ("BUY", 100, "sma_cross", 50.0)
    assert order.reduce_only is False


def test_request_order_when_same_direction_repeats_then_nothing_is_requested():
    a = allocator()
    a.on_signal(signal())
    assert a.on_signal(signal()) == ()


def test_request_exit_when_long_position_goes_flat_then_sells_it_reduce_only():
    a = allocator()
    (entry,) = a.on_signal(signal())
    a.on_fill(f.fill(quantity="100", strategy="sma_cross",
                     client_order_id=entry.client_order_id))
    (exit_,) = a.on_signal(signal(direction=FLAT))
    assert (exit_.side, exit_.quantity, exit_.reduce_only) == ("SELL", 100, True)


def test_forget_in_flight_order_when_denied_then_next_target_starts_from_the_real_position():
    a = allocator()
    (entry,) = a.on_signal(signal())
    denied = OrderDenied(**f.header(), client_order_id=entry.client_order_id, account="paper",
                         strategy="sma_cross", symbol="AAA", side="BUY", quantity=Decimal(100),
                         trading_state="ACTIVE", checks=(), reasons=("x",))
    a.on_order_closed(denied)
    assert a.on_signal(signal(direction=FLAT)) == ()   # nothing held, nothing to sell


def test_aggregate_when_majority_mode_then_one_ensemble_order_follows_the_vote():
    a = allocator(aggregation=AggregationConfig(mode="majority"))
    assert a.on_signal(signal("sma_cross")) == ()        # 1 of 3 is no majority
    (order,) = a.on_signal(signal("momentum"))           # 2 of 3 are
    assert (order.strategy, order.side) == ("ensemble", "BUY")
    assert a.on_signal(signal("mean_reversion", direction=FLAT)) == ()  # still 2 of 3
    (exit_,) = a.on_signal(signal("sma_cross", direction=FLAT))
    assert exit_.side == "SELL" and exit_.strategy == "ensemble"


def test_vote_when_no_strict_majority_then_flat():
    assert majority({"a": (LONG, 1.0), "b": (FLAT, 1.0)}, 2) == FLAT
    assert majority({"a": (LONG, 1.0), "b": (LONG, 0.1), "c": (SHORT, 1.0)}, 3) == LONG
    assert majority({"a": (SHORT, 1.0), "b": (SHORT, 1.0)}, 5) == FLAT


def test_vote_when_confidence_weighted_then_threshold_decides():
    votes = {"a": (LONG, 0.9), "b": (LONG, 0.6)}
    assert weighted(votes, 3, 0.4, True) == LONG       # 1.5 / 3 = 0.5
    assert weighted(votes, 3, 0.6, True) == FLAT
    assert weighted({"a": (SHORT, 1.0)}, 1, 0.3, True) == FLAT
    assert weighted({"a": (SHORT, 1.0)}, 1, 0.3, False) == SHORT


def test_size_when_fixed_fraction_then_whole_shares_of_that_share_of_equity():
    config = SizingConfig(method="fixed_fraction", fraction=0.05)
    assert target_shares(config, price=33.0, equity=Decimal(100_000)) == Decimal(151)


def test_size_when_vol_target_without_volatility_then_no_position():
    config = SizingConfig(method="vol_target", vol_target=0.1)
    assert target_shares(config, price=10.0, equity=Decimal(100_000)) == 0
    # 1% a bar * sqrt(252) = 15.9% a year -> 0.1 / 0.1587 of equity
    shares = target_shares(config, price=10.0, equity=Decimal(100_000), volatility=0.01)
    assert shares == Decimal(6299)


def test_size_when_kelly_then_multiplier_is_bounded():
    config = SizingConfig(method="kelly", fraction=0.02, kelly_fraction=0.5, kelly_min_trades=2)
    winner = TradeRecord()
    for pnl in (100, 100, 100, -10):
        winner.add(pnl)
    # full Kelly = 0.75 - 0.25/10 = 0.725; half = 0.3625 -> 18x the base, capped at 1.5x
    assert target_shares(config, price=10.0, equity=Decimal(100_000), record=winner) == 300
    loser = TradeRecord()
    for pnl in (-100, -100, 10):
        loser.add(pnl)
    assert target_shares(config, price=10.0, equity=Decimal(100_000), record=loser) == 50


def test_reject_config_when_method_unknown_then_error_names_the_field():
    with pytest.raises(ValueError, match="sizing.method"):
        SizingConfig(method="martingale")
    with pytest.raises(ValueError, match="orders.type"):
        OrderTerms(type="iceberg")


def test_attach_bracket_when_entry_and_stop_loss_configured_then_prices_follow_the_close():
    a = allocator(terms=OrderTerms(stop_loss_pct=0.05, take_profit_pct=0.1))
    (order,) = a.on_signal(signal(price=50.0))
    assert order.stop_loss == Decimal("47.5000") and order.take_profit == Decimal("55.0000")
