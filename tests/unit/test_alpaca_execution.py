"""AlpacaExecution: the pure execution stage of a live run (balance check, outbox, broker
reports -> order updates and fills), and the report events the live loop records."""
from __future__ import annotations

from decimal import Decimal

import msgspec

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.client import SubmitOutcome
from connectors.alpaca.config import AlpacaConfig
from connectors.alpaca.execution import AlpacaExecution
from connectors.alpaca.reports import submit_report, submit_unknown, trade_update_report
from schemas import (
    BrokerAccountDetected, BrokerBalanceRead, BrokerOrderTimes, FillExecuted, OrderAccepted,
    OrderFilled, OrderRejected, OrderSubmitted,
)
from tests.factories import ACCOUNT, T0, header, place_order
from tests.fixtures.alpaca.recorded import load

SECOND = 1_000_000_000
CTX = Context("live-run", "execution", ACCOUNT)
REPORTS = Context("live-run", "broker", ACCOUNT)


def stage(config: AlpacaConfig = AlpacaConfig(), outbox: list | None = None,
          equity: str | None = "100000", buying_power: str | None = "200000",
          account_type: str = "paper") -> AlpacaExecution:
    execution = AlpacaExecution(CTX, config, outbox)
    execution.on_account(BrokerAccountDetected(
        **header(T0, "broker"), account=ACCOUNT, broker="alpaca", account_type=account_type,
        account_number="PA3UJX0KZMAM", endpoint="https://paper-api.alpaca.markets",
        status="ACTIVE", equity=None if equity is None else Decimal(equity),
        buying_power=None if buying_power is None else Decimal(buying_power)))
    return execution


def wire_order(placed, **changes) -> dict:
    return {**load("order_new"), "client_order_id": placed.client_order_id,
            "symbol": placed.symbol, "qty": str(placed.quantity), **changes}


def update_report(placed, event: str, timestamp: str, received_ns: int, **extra):
    order = wire_order(placed, **extra.pop("order", {}))
    update = msgspec.convert({"event": event, "order": order, "timestamp": timestamp, **extra},
                             wire.TradeUpdate, strict=False)
    return trade_update_report(update, REPORTS, ACCOUNT, received_ns, backfilled=False)


def test_order_when_balance_known_and_high_enough_then_submitted_and_in_outbox():
    outbox: list = []
    order = place_order(ts=T0 + SECOND)
    events = stage(outbox=outbox).on_order(order)
    assert [type(e) for e in events] == [OrderSubmitted]
    assert outbox == [order]


def test_order_when_equity_below_minimum_then_rejected_with_the_numbers_and_not_sent():
    outbox: list = []
    events = stage(outbox=outbox, equity="4000").on_order(place_order(ts=T0 + SECOND))
    assert [type(e) for e in events] == [OrderRejected]
    assert "broker_balance" in events[0].reason and "equity 4000 < minimum 5000" in events[0].reason
    assert outbox == []


def test_order_when_balance_stale_then_rejected_fail_closed_unless_warn():
    late = T0 + 301 * SECOND
    events = stage().on_order(place_order(ts=late))
    assert isinstance(events[0], OrderRejected) and "fail-closed" in events[0].reason
    warned = stage(AlpacaConfig(balance_check="warn")).on_order(place_order(ts=late))
    assert [type(e) for e in warned] == [OrderSubmitted]


def test_order_when_fresh_balance_read_then_stale_one_is_replaced():
    execution = stage()
    late = T0 + 301 * SECOND
    execution.on_balance(BrokerBalanceRead(**header(late - SECOND, "broker"), account=ACCOUNT,
                                           equity=Decimal(90000), buying_power=Decimal(90000)))
    assert [type(e) for e in execution.on_order(place_order(ts=late))] == [OrderSubmitted]


def test_order_when_client_order_id_seen_before_then_rejected_as_duplicate():
    execution, order = stage(), place_order(ts=T0 + SECOND)
    execution.on_order(order)
    events = execution.on_order(order)
    assert isinstance(events[0], OrderRejected) and "duplicate" in events[0].reason


def test_replay_when_no_outbox_then_nothing_is_kept_to_send():
    execution = stage(outbox=None)
    assert [type(e) for e in execution.on_order(place_order(ts=T0 + SECOND))] == [OrderSubmitted]
    assert execution.outbox is None


def test_submit_answer_when_then_new_update_arrives_then_accepted_only_once():
    execution, order = stage(), place_order(ts=T0 + SECOND)
    execution.on_order(order)
    found = msgspec.convert(wire_order(order, id="alp-1"), wire.Order, strict=False)
    answer = submit_report(order, SubmitOutcome(found), REPORTS, T0 + 2 * SECOND)
    accepted = execution.on_submitted(answer)
    assert [type(e) for e in accepted] == [OrderAccepted]
    assert accepted[0].broker_order_id == "alp-1"
    assert accepted[0].correlation_id == order.correlation_id
    new = execution.on_trade_update(update_report(order, "new", "2024-07-01T14:30:00.125Z",
                                                  T0 + 3 * SECOND))
    assert [type(e) for e in new] == [BrokerOrderTimes]


def test_trade_update_when_fill_then_fill_of_the_strategy_and_broker_times_beside_ours():
    execution = stage(account_type="paper")
    order = place_order(ts=T0 + SECOND, strategy="sma_cross", quantity="10")
    execution.on_order(order)
    report = update_report(order, "fill", "2024-07-01T14:30:00.5Z", T0 + 4 * SECOND,
                           execution_id="exec-1", price="214.30", qty="10",
                           order={"status": "filled", "filled_qty": "10",
                                  "filled_avg_price": "214.30",
                                  "filled_at": "2024-07-01T14:30:00.5Z"})
    assert report.ts_event == 1719844200500000000 and report.ts_init == T0 + 4 * SECOND
    events = execution.on_trade_update(report)
    assert [type(e) for e in events] == [FillExecuted, OrderFilled, BrokerOrderTimes]
    fill, times = events[0], events[2]
    assert (fill.strategy, fill.quantity, fill.price) == ("sma_cross", Decimal(10),
                                                          Decimal("214.30"))
    assert fill.correlation_id == order.correlation_id
    assert times.account_type == "paper" and times.filled_at_ns == 1719844200500000000
    assert times.received_ns == T0 + 4 * SECOND


def test_submit_answer_when_alpaca_refused_then_rejected_with_alpacas_reason():
    execution, order = stage(), place_order(ts=T0 + SECOND)
    execution.on_order(order)
    refusal = submit_report(order, SubmitOutcome(None, rejection="insufficient buying power"),
                            REPORTS, T0 + 2 * SECOND)
    events = execution.on_refused(refusal)
    assert isinstance(events[0], OrderRejected)
    assert events[0].reason == "refused by Alpaca: insufficient buying power"


def test_submit_when_outcome_unknown_then_refusal_says_so():
    order = place_order(ts=T0 + SECOND)
    report = submit_unknown(order, "HTTP 504", 3, REPORTS, T0 + 2 * SECOND)
    assert report.reason == "outcome unknown: HTTP 504" and report.attempts == 3


def bracket_parent(order, status: str = "new", **changes) -> dict:
    """A bracket parent as Alpaca reports it: its legs have Alpaca's own client order ids."""
    legs = [{**load("order_new"), "id": "leg-tp-id", "client_order_id": "alpaca-tp-uuid",
             "symbol": order.symbol, "qty": str(order.quantity), "side": "sell",
             "type": "limit", "limit_price": "230", "status": "held",
             "order_class": "bracket"},
            {**load("order_new"), "id": "leg-sl-id", "client_order_id": "alpaca-sl-uuid",
             "symbol": order.symbol, "qty": str(order.quantity), "side": "sell",
             "type": "stop", "stop_price": "200", "status": "held",
             "order_class": "bracket"}]
    return {"order_class": "bracket", "status": status, "legs": legs, **changes}


def test_bracket_leg_fill_when_parent_reported_its_legs_then_fill_of_the_parents_strategy():
    execution = stage()
    order = place_order("AAPL", ts=T0 + SECOND, strategy="sma_cross", quantity="10",
                        take_profit=Decimal(230), stop_loss=Decimal(200))
    execution.on_order(order)
    execution.on_trade_update(update_report(order, "new", "2024-07-01T14:30:00.1Z",
                                            T0 + 2 * SECOND, order=bracket_parent(order)))
    leg = {**load("order_new"), "id": "leg-tp-id", "client_order_id": "alpaca-tp-uuid",
           "symbol": "AAPL", "qty": "10", "side": "sell", "type": "limit",
           "order_class": "bracket", "status": "filled", "filled_qty": "10",
           "filled_avg_price": "230", "filled_at": "2024-07-01T15:00:00Z"}
    update = msgspec.convert({"event": "fill", "order": leg, "timestamp": "2024-07-01T15:00:00Z",
                              "execution_id": "exec-tp", "price": "230", "qty": "10"},
                             wire.TradeUpdate, strict=False)
    events = execution.on_trade_update(trade_update_report(update, REPORTS, ACCOUNT,
                                                           T0 + 3 * SECOND, backfilled=False))
    fill = events[0]
    assert isinstance(fill, FillExecuted)
    assert (fill.client_order_id, fill.side, fill.strategy) == ("alpaca-tp-uuid", "SELL",
                                                               "sma_cross")
    assert fill.correlation_id == order.correlation_id and fill.causation_id == order.event_id


def test_fill_when_order_unknown_and_not_a_known_leg_then_strategy_empty():
    execution = stage()
    stranger = {**load("order_new"), "client_order_id": "web-manual-1", "status": "filled",
                "filled_qty": "10", "filled_avg_price": "214"}
    update = msgspec.convert({"event": "fill", "order": stranger, "execution_id": "e",
                              "timestamp": "2024-07-01T15:00:00Z", "price": "214",
                              "qty": "10"}, wire.TradeUpdate, strict=False)
    events = execution.on_trade_update(trade_update_report(update, REPORTS, ACCOUNT, T0,
                                                           backfilled=False))
    assert events[0].strategy == ""


def test_order_events_when_live_account_then_each_records_live():
    import msgspec

    config = msgspec.structs.replace(AlpacaConfig(), account_type="live")
    execution = stage(config, account_type="live")
    order = place_order(ts=T0 + SECOND, strategy="sma_cross", quantity="10")
    submitted = execution.on_order(order)
    report = update_report(order, "fill", "2024-07-01T14:30:00.5Z", T0 + 4 * SECOND,
                           execution_id="exec-1", price="214.30", qty="10",
                           order={"status": "filled", "filled_qty": "10",
                                  "filled_avg_price": "214.30",
                                  "filled_at": "2024-07-01T14:30:00.5Z"})
    updates = execution.on_trade_update(report)
    order_events = [e for e in (*submitted, *updates) if hasattr(e, "client_order_id")
                    and type(e).__name__ not in ("FillExecuted", "BrokerOrderTimes")]
    assert [type(e).__name__ for e in order_events] == ["OrderSubmitted", "OrderFilled"]
    assert {e.account_type for e in order_events} == {"live"}
