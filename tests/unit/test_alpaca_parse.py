"""Pure translations of Alpaca's wire format into firetape events."""
from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from agents.context import Context
from connectors.alpaca import wire
from schemas.broker import PAPER
from connectors.alpaca.parse import (
    SeenOrder, already_seen, bars_frame, missed_updates, order_request, rfc3339_ns, seen_after,
    stream_bar_event, trade_update_events,
)
from connectors.alpaca.timeframes import TimeframeError, parse_timeframe
from schemas import (
    FillExecuted, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderPartiallyFilled,
    OrderRejected,
)
from tests import factories as f
from tests.fixtures.alpaca.recorded import load

RECEIVED = 1_719_844_200_700_000_000   # 2024-07-01T14:30:00.7Z, our clock
CTX = Context("live-run", "execution", "paper")


def order(name: str = "order_new", **changes) -> wire.Order:
    return msgspec.convert({**load(name), **changes}, wire.Order, strict=False)


def placed():
    return f.place_order("AAPL", "BUY", "10", strategy="sma_cross")


def translate(update: wire.TradeUpdate, place=None):
    return trade_update_events(update, place, CTX, "paper", PAPER, RECEIVED)


def test_rfc3339_ns_when_nanoseconds_then_exact():
    assert rfc3339_ns("2024-07-01T14:30:00.123456789Z") == 1_719_844_200_123_456_789
    assert rfc3339_ns("2024-07-01T14:30:00Z") == 1_719_844_200_000_000_000
    assert rfc3339_ns("2024-07-01T10:30:00.5-04:00") == 1_719_844_200_500_000_000
    assert rfc3339_ns(None) == 0


@pytest.mark.parametrize("text", ["1Sec", "60Min", "24Hour", "2Day", "minute", ""])
def test_parse_timeframe_when_not_offered_then_error_names_the_choices(text):
    with pytest.raises(TimeframeError, match="1-59Min, 1-23Hour or 1Day"):
        parse_timeframe(text)


def test_parse_timeframe_when_weekly_then_error_explains_why():
    with pytest.raises(TimeframeError, match="no fixed close"):
        parse_timeframe("1Week")


def test_stream_bar_when_received_then_stamped_with_its_close_and_receive_time():
    message = wire.StreamBar(S="AAPL", o=214.0, h=214.6, l=213.9, c=214.5, v=12_345, n=120,
                             vw=214.3, t="2024-07-01T14:30:00Z")
    bar = stream_bar_event(message, "live-run", RECEIVED, parse_timeframe("1Min"))
    assert bar.ts_event == 1_719_844_260_000_000_000      # 14:31, the close
    assert bar.ts_init == RECEIVED
    assert bar.event_id == f"AAPL:{bar.ts_event}"
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (214.0, 214.6, 213.9, 214.5,
                                                                   12_345)


def test_bars_frame_when_daily_then_closes_at_four_pm_new_york():
    daily = [wire.HistoricalBar(t="2024-07-01T04:00:00Z", o=1, h=2, l=0.5, c=1.5, v=10)]
    frame = bars_frame({"AAPL": daily}, parse_timeframe("1Day"))
    assert frame.ts.tolist() == [rfc3339_ns("2024-07-01T20:00:00Z")]   # 16:00 EDT
    assert frame.symbols == ("AAPL",)


def test_order_request_when_bracket_then_alpaca_bracket_body_with_exact_strings():
    body = order_request(f.place_order("AAPL", "BUY", "10", order_type="LIMIT",
                                       limit_price=Decimal("214.10"), time_in_force="DAY",
                                       stop_loss=Decimal("200"), take_profit=Decimal("230.5")))
    assert body["qty"] == "10" and body["limit_price"] == "214.10"
    assert (body["side"], body["type"], body["time_in_force"]) == ("buy", "limit", "day")
    assert body["order_class"] == "bracket"
    assert body["take_profit"] == {"limit_price": "230.5"}
    assert body["stop_loss"] == {"stop_price": "200"}


def test_trade_update_when_new_then_accepted_with_broker_time_and_ours():
    update = wire.TradeUpdate(event="new", order=order(status="new"),
                              timestamp="2024-07-01T14:30:00.125000000Z")
    result = translate(update, placed())
    (accepted,) = result.events
    assert isinstance(accepted, OrderAccepted)
    assert accepted.broker_order_id == "61e69015-8549-4bfd-b9c3-01e75843f47d"
    assert accepted.ts_event == 1_719_844_200_125_000_000 and accepted.ts_init == RECEIVED
    assert result.times.account_type == PAPER
    assert result.times.submitted_at_ns == 1_719_844_200_120_000_000
    assert result.times.received_ns - result.times.update_ns == 575_000_000


def test_trade_update_when_fill_then_fill_and_filled_with_exact_decimals():
    place = placed()
    update = wire.TradeUpdate(event="fill", order=order("order_filled"),
                              timestamp="2024-07-01T14:30:00.512345678Z",
                              execution_id="exec-1", price=Decimal("214.35"), qty=Decimal("10"))
    fill, filled = translate(update, place).events
    assert isinstance(fill, FillExecuted) and isinstance(filled, OrderFilled)
    assert (fill.quantity, fill.price, fill.leaves_quantity) == (Decimal(10), Decimal("214.35"), 0)
    assert fill.strategy == "sma_cross" and fill.side == "BUY" and fill.fill_id == "exec-1"
    assert fill.correlation_id == place.correlation_id and fill.causation_id == place.event_id
    assert filled.avg_price == Decimal("214.35") and filled.filled_quantity == Decimal(10)


def test_trade_update_when_partial_fill_then_partially_filled_with_leaves():
    update = wire.TradeUpdate(event="partial_fill", order=order("order_partially_filled"),
                              timestamp="2024-07-01T14:30:00.4Z", execution_id="exec-0",
                              price=Decimal("214.30"), qty=Decimal("4"))
    fill, partial = translate(update, placed()).events
    assert isinstance(partial, OrderPartiallyFilled)
    assert partial.leaves_quantity == Decimal(6) and fill.leaves_quantity == Decimal(6)


@pytest.mark.parametrize("event, kind", [("canceled", OrderCanceled), ("expired", OrderExpired),
                                         ("rejected", OrderRejected)])
def test_trade_update_when_terminal_then_matching_lifecycle_event(event, kind):
    update = wire.TradeUpdate(event=event, order=order(status=event),
                              timestamp="2024-07-01T20:00:00Z")
    (only,) = translate(update, placed()).events
    assert isinstance(only, kind) and only.client_order_id == "ft-0f4c2a9d"


def test_trade_update_when_only_informative_then_no_pipeline_event_but_times():
    update = wire.TradeUpdate(event="pending_new", order=order(status="pending_new"),
                              timestamp="2024-07-01T14:30:00.1Z")
    result = translate(update, placed())
    assert result.events == () and result.times.update == "pending_new"


def test_trade_update_when_delivered_twice_then_same_event_ids():
    update = wire.TradeUpdate(event="fill", order=order("order_filled"), execution_id="x",
                              timestamp="2024-07-01T14:30:00.5Z", price=Decimal(1), qty=Decimal(10))
    first, second = translate(update, placed()), translate(update, placed())
    assert [e.event_id for e in first.events] == [e.event_id for e in second.events]
    assert len({e.event_id for e in first.events}) == 2


def test_trade_update_when_order_unknown_then_events_still_carry_the_client_order_id():
    update = wire.TradeUpdate(event="new", order=order(status="new"),
                              timestamp="2024-07-01T14:30:00Z")
    (accepted,) = translate(update, None).events
    assert accepted.correlation_id == "ft-0f4c2a9d" and accepted.causation_id == ""


def test_missed_updates_when_partial_seen_then_fill_of_the_rest_at_the_implied_price():
    now = order("order_filled", filled_qty="10", filled_avg_price="214.35")
    seen = SeenOrder(Decimal(4), Decimal("214.30"), "partially_filled")
    (update,) = missed_updates(now, seen)
    assert update.event == "fill" and update.qty == Decimal(6)
    # 10 * 214.35 - 4 * 214.30 = 1286.30 over 6 shares
    assert update.price * 6 == Decimal("1286.30")
    assert update.execution_id.startswith("backfill-")


def test_missed_updates_when_never_seen_and_canceled_then_new_then_canceled():
    now = order(status="canceled", canceled_at="2024-07-01T15:00:00Z")
    events = [u.event for u in missed_updates(now, None)]
    assert events == ["new", "canceled"]


def test_missed_updates_when_nothing_changed_then_none():
    now = order("order_filled")
    assert missed_updates(now, seen_after(wire.TradeUpdate(event="fill", order=now))) == []


def test_seen_after_when_backfilled_new_of_a_filled_order_then_fill_still_missing():
    now = order("order_filled")
    seen = seen_after(wire.TradeUpdate(event="new", order=now))
    assert seen == SeenOrder(Decimal(0), Decimal(0), "new")
    assert [u.event for u in missed_updates(now, seen)] == ["fill"]


def test_already_seen_when_live_fill_repeats_the_backfill_then_true():
    now = order("order_filled")
    seen = seen_after(wire.TradeUpdate(event="fill", order=now))
    assert already_seen(wire.TradeUpdate(event="fill", order=now), seen)
    assert not already_seen(wire.TradeUpdate(event="canceled", order=now), seen)


def test_wire_account_when_decoded_then_money_is_exact_decimal():
    account = msgspec.convert(load("account_paper"), wire.Account, strict=False)
    assert account.equity == Decimal("100000") and account.account_number.startswith("PA")
    assert isinstance(account.buying_power, Decimal)


def test_timeframe_start_ns_when_given_a_close_then_the_start_close_ns_came_from():
    start = 1_719_844_200_000_000_000             # 2024-07-01T14:30:00Z
    for name in ("1Min", "15Min", "1Hour"):
        frame = parse_timeframe(name)
        assert frame.start_ns(frame.close_ns(start)) == start
    day = parse_timeframe("1Day")
    midnight = 1_719_806_400_000_000_000          # 2024-07-01T00:00:00 New York
    assert day.start_ns(day.close_ns(midnight)) == midnight
