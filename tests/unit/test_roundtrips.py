"""Round trips from fills: opening, adding, partial exits, flips and exact PnL."""
from decimal import Decimal

import pytest

from firetape.report.frames import frames_from_events
from firetape.report.roundtrips import TRIP_COLUMNS, round_trips
from tests.factories import DAY, T0, fill


def fills_frame(*events):
    return frames_from_events(("fills", event, i) for i, event in enumerate(events)).fills


def test_round_trips_when_long_opened_and_closed_then_one_long_trip_net_of_commission():
    fills = fills_frame(fill(side="BUY", quantity="100", price="10", commission="1", ts=T0),
                        fill(side="SELL", quantity="100", price="12", commission="1",
                             ts=T0 + DAY))

    trips = round_trips(fills)

    assert len(trips) == 1
    trip = trips.iloc[0]
    assert (trip.side, trip.entry_ts, trip.exit_ts) == ("long", T0, T0 + DAY)
    assert (trip.quantity, trip.avg_entry, trip.avg_exit) == (100.0, 10.0, 12.0)
    assert trip.pnl == pytest.approx(198.0)
    assert trip.pnl_exact == Decimal("198")
    assert trip["return"] == pytest.approx(198.0 / 1000.0)


def test_round_trips_when_added_and_partially_exited_then_one_trip_with_weighted_averages():
    fills = fills_frame(fill(side="BUY", quantity="50", price="10", ts=T0),
                        fill(side="BUY", quantity="50", price="12", ts=T0 + DAY),
                        fill(side="SELL", quantity="40", price="11", ts=T0 + 2 * DAY),
                        fill(side="SELL", quantity="60", price="12.5", ts=T0 + 3 * DAY))

    trips = round_trips(fills)

    assert len(trips) == 1
    trip = trips.iloc[0]
    assert trip.quantity == 100.0
    assert trip.avg_entry == pytest.approx(11.0)
    assert trip.avg_exit == pytest.approx((40 * 11 + 60 * 12.5) / 100)
    assert trip.pnl_exact == Decimal("90")     # 440 + 750 - 500 - 600
    assert (trip.entry_ts, trip.exit_ts, trip.fills) == (T0, T0 + 3 * DAY, 4)


def test_round_trips_when_fill_flips_sign_then_closes_long_and_opens_short_with_remainder():
    fills = fills_frame(fill(side="BUY", quantity="100", price="10", commission="1", ts=T0),
                        fill(side="SELL", quantity="150", price="12", commission="3",
                             ts=T0 + DAY),
                        fill(side="BUY", quantity="50", price="11", commission="0.5",
                             ts=T0 + 2 * DAY))

    trips = round_trips(fills)

    assert trips["side"].tolist() == ["long", "short"]
    long_trip, short_trip = trips.iloc[0], trips.iloc[1]
    # The flipping fill's commission of 3 splits 2 (100 closed) / 1 (50 opened).
    assert long_trip.pnl_exact == Decimal("197")          # 200 - 1 - 2
    assert short_trip.pnl_exact == Decimal("48.5")        # 50 x (12 - 11) - 1 - 0.5
    assert (short_trip.entry_ts, short_trip.quantity, short_trip.avg_entry) == (
        T0 + DAY, 50.0, 12.0)


def test_round_trips_when_position_still_open_then_it_is_not_a_trip():
    fills = fills_frame(fill(side="SELL", quantity="10", price="10", ts=T0),
                        fill(side="BUY", quantity="10", price="9", ts=T0 + DAY),
                        fill(side="BUY", quantity="5", price="9", ts=T0 + 2 * DAY))

    trips = round_trips(fills)

    assert trips["side"].tolist() == ["short"]
    assert trips.iloc[0].pnl_exact == Decimal("10")


def test_round_trips_when_two_strategies_trade_one_symbol_then_sleeves_are_separate():
    fills = fills_frame(fill(side="BUY", quantity="10", price="10", strategy="a", ts=T0),
                        fill(side="SELL", quantity="10", price="10", strategy="b", ts=T0),
                        fill(side="SELL", quantity="10", price="11", strategy="a",
                             ts=T0 + DAY),
                        fill(side="BUY", quantity="10", price="11", strategy="b",
                             ts=T0 + DAY))

    trips = round_trips(fills).set_index("strategy")

    assert trips.loc["a", "pnl_exact"] == Decimal("10")
    assert trips.loc["b", "pnl_exact"] == Decimal("-10")


def test_round_trips_when_prices_are_inexact_in_binary_then_float_pnl_matches_exact_pnl():
    fills = fills_frame(
        fill(side="BUY", quantity="33", price="101.37", commission="0.33", ts=T0),
        fill(side="BUY", quantity="17", price="100.03", commission="0.17", ts=T0 + DAY),
        fill(side="SELL", quantity="29", price="102.11", commission="0.29", ts=T0 + 2 * DAY),
        fill(side="SELL", quantity="21", price="99.99", commission="0.21", ts=T0 + 3 * DAY))

    trip = round_trips(fills).iloc[0]

    entry = Decimal("33") * Decimal("101.37") + Decimal("17") * Decimal("100.03")
    exit_ = Decimal("29") * Decimal("102.11") + Decimal("21") * Decimal("99.99")
    commissions = Decimal("0.33") + Decimal("0.17") + Decimal("0.29") + Decimal("0.21")
    assert trip.pnl_exact == exit_ - entry - commissions
    assert abs(trip.pnl - float(trip.pnl_exact)) < 1e-9
    # The float path is (avg_exit - avg_entry) x quantity - commissions.
    expected = (trip.avg_exit - trip.avg_entry) * trip.quantity - float(commissions)
    assert trip.pnl == pytest.approx(expected, abs=1e-9)


def test_round_trips_when_no_fills_then_empty_frame_with_all_columns():
    trips = round_trips(fills_frame())

    assert trips.empty
    assert list(trips.columns) == list(TRIP_COLUMNS)
