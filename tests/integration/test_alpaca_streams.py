"""The stream code end to end against a local websocket peer speaking Alpaca's protocol,
including a disconnect in the middle and the backfill after it (trade updates from the
orders endpoint, bars from the historical bars endpoint)."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import responses

from agents.context import Context
from connectors.alpaca.client import AlpacaTrading
from connectors.alpaca.executor import AsyncAlpaca
from connectors.alpaca.history import AlpacaHistory
from connectors.alpaca.parse import rfc3339_ns, stream_bar_event, trade_update_events
from connectors.alpaca.ratelimit import Backoff, TokenBucket
from connectors.alpaca.stream import BarStream, StreamAuthError, TradeUpdateStream
from connectors.alpaca.timeframes import parse_timeframe
from schemas import FillExecuted, OrderAccepted, OrderCanceled, OrderFilled, OrderPartiallyFilled
from tests.fixtures.alpaca.recorded import DATA, PAPER, credentials, load
from tests.fixtures.alpaca.stream_peer import DROP, StreamPeer, bar_message, trade_update

FAST = Backoff(0.01, 0.05)


async def collect_until(stream, items: list, count: int, timeout: float = 10.0) -> None:
    """Run `stream` until `items` holds `count` entries, then stop it."""
    task = asyncio.create_task(stream.run())

    async def enough():
        while len(items) < count:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(enough(), timeout)
    finally:
        await stream.stop()
        await asyncio.wait_for(task, timeout)


def test_bar_stream_when_disconnected_mid_stream_then_reconnects_and_keeps_going():
    scripts = [[bar_message("AAPL", "2024-07-01T14:30:00Z", 214.5),
                bar_message("MSFT", "2024-07-01T14:30:00Z", 456.0), DROP],
               [bar_message("AAPL", "2024-07-01T14:31:00Z", 214.7)]]
    received = []

    async def on_bar(bar, received_ns):
        received.append(stream_bar_event(bar, "live", received_ns, parse_timeframe("1Min")))

    async def scenario():
        async with StreamPeer("data", scripts) as peer:
            stream = BarStream(credentials(), ["AAPL", "MSFT"], on_bar, url=peer.url,
                               backoff=FAST)
            await collect_until(stream, received, 3)
            return peer, stream

    peer, stream = asyncio.run(scenario())
    assert [(b.symbol, b.close) for b in received] == [("AAPL", 214.5), ("MSFT", 456.0),
                                                      ("AAPL", 214.7)]
    assert received[2].event_id == "AAPL:1719844320000000000"    # closes 14:32
    assert peer.connections == 2 and stream.connections == 2
    auths = [m for m in peer.received if m.get("action") == "auth"]
    subscriptions = [m for m in peer.received if m.get("action") == "subscribe"]
    assert len(auths) == 2 and subscriptions[-1]["bars"] == ["AAPL", "MSFT"]


def ns(text: str) -> int:
    return rfc3339_ns(text)


@responses.activate
def test_bar_stream_when_disconnected_then_backfills_missed_bars_in_order_exactly_once():
    now = [ns("2024-07-01T14:30:30Z")]

    async def network_fails():
        now[0] = ns("2024-07-01T14:35:30Z")    # five minutes pass before the reconnect
        return DROP

    scripts = [[bar_message("AAPL", "2024-07-01T14:30:00Z", 214.5)
                + bar_message("MSFT", "2024-07-01T14:30:00Z", 456.0),
                bar_message("AAPL", "2024-07-01T14:31:00Z", 214.7), network_fails],
               # After the reconnect: a live copy of a backfilled bar, then new ones.
               [bar_message("AAPL", "2024-07-01T14:34:00Z", 215.0),
                bar_message("AAPL", "2024-07-01T14:35:00Z", 215.2),
                bar_message("MSFT", "2024-07-01T14:35:00Z", 456.5)]]
    # The historical bars endpoint, two pages (AAPL's 14:35 bar is still open at 14:35:30).
    responses.get(f"{DATA}/stocks/bars", json=load("bars_gap_page1"))
    responses.get(f"{DATA}/stocks/bars", json=load("bars_gap_page2"))
    history = AlpacaHistory(credentials(), bucket=TokenBucket(sleep=lambda s: None))
    broker = AsyncAlpaca(AlpacaTrading(credentials()), history=history)
    minute = parse_timeframe("1Min")
    received = []

    async def on_bar(bar, received_ns):
        received.append(stream_bar_event(bar, "live", received_ns, minute))

    async def between(symbols, start_ns, end_ns):
        return await broker.bars_between(symbols, minute, start_ns, end_ns)

    async def scenario():
        async with StreamPeer("data", scripts) as peer:
            stream = BarStream(credentials(), ["AAPL", "MSFT", "TSLA"], on_bar, url=peer.url,
                               backoff=FAST, bars_between=between, clock=lambda: now[0])
            await collect_until(stream, received, 14)
            await asyncio.sleep(0.1)   # anything more would be a duplicate
            return stream

    try:
        stream = asyncio.run(scenario())
    finally:
        broker.close()
    got = [(b.symbol, b.ts_event) for b in received]
    close = {m: ns(f"2024-07-01T14:{m + 1:02d}:00Z") for m in range(29, 36)}
    assert got == [
        ("AAPL", close[30]), ("MSFT", close[30]), ("AAPL", close[31]),      # live
        ("TSLA", close[30]),                                                 # backfilled:
        ("MSFT", close[31]),
        ("AAPL", close[32]), ("MSFT", close[32]), ("TSLA", close[32]),
        ("AAPL", close[33]), ("MSFT", close[33]),
        ("AAPL", close[34]), ("MSFT", close[34]),
        ("AAPL", close[35]), ("MSFT", close[35]),                            # live again
    ]
    assert len({b.event_id for b in received}) == len(received)
    assert stream.backfilled == 9 and stream.connections == 2
    # A backfilled bar is the bar the stream would have sent, with the same id.
    assert received[5].event_id == "AAPL:" + str(close[32]) and received[5].close == 214.9
    queries = [c.request.params for c in responses.calls]
    assert [q.get("page_token") for q in queries] == [None, "QUFQTHxNfDIwMjQtMDctMDFUMTQ6MzU6MDBa"]
    assert queries[0]["symbols"] == "AAPL,MSFT,TSLA" and queries[0]["timeframe"] == "1Min"
    # From the bar open at the first subscription (TSLA, never seen) to now.
    assert (queries[0]["start"], queries[0]["end"]) == ("2024-07-01T14:29:30Z",
                                                        "2024-07-01T14:35:30Z")


@responses.activate
def test_bar_stream_when_backfill_refused_then_goes_on_live():
    now = [ns("2024-07-01T14:30:30Z")]
    scripts = [[bar_message("AAPL", "2024-07-01T14:30:00Z", 214.5), DROP],
               [bar_message("AAPL", "2024-07-01T14:33:00Z", 215.1)]]
    responses.get(f"{DATA}/stocks/bars", status=403, json=load("error_sip_subscription"))
    history = AlpacaHistory(credentials(), bucket=TokenBucket(sleep=lambda s: None))
    broker = AsyncAlpaca(AlpacaTrading(credentials()), history=history)
    minute = parse_timeframe("1Min")
    received = []

    async def on_bar(bar, received_ns):
        received.append(bar.t)

    async def between(symbols, start_ns, end_ns):
        return await broker.bars_between(symbols, minute, start_ns, end_ns)

    async def scenario():
        async with StreamPeer("data", scripts) as peer:
            stream = BarStream(credentials(), ["AAPL"], on_bar, url=peer.url, backoff=FAST,
                               bars_between=between, clock=lambda: now[0])
            await collect_until(stream, received, 2)
            return stream

    try:
        stream = asyncio.run(scenario())
    finally:
        broker.close()
    assert received == ["2024-07-01T14:30:00Z", "2024-07-01T14:33:00Z"]
    assert stream.backfilled == 0 and len(responses.calls) == 1


@responses.activate
def test_bar_stream_when_backfill_fails_then_reconnects_and_backfills_again():
    now = [ns("2024-07-01T14:30:30Z")]

    async def network_fails():
        now[0] = ns("2024-07-01T14:33:30Z")
        return DROP

    scripts = [[bar_message("AAPL", "2024-07-01T14:30:00Z", 214.5), network_fails],
               [],                                        # backfill fails: we hang up
               [bar_message("AAPL", "2024-07-01T14:33:00Z", 215.1)]]
    for _ in range(5):                                    # every attempt of the first try
        responses.get(f"{DATA}/stocks/bars", status=503, json={"message": "unavailable"})
    responses.get(f"{DATA}/stocks/bars", json={"bars": {"AAPL": [
        {"t": "2024-07-01T14:31:00Z", "o": 1, "h": 1, "l": 1, "c": 214.7, "v": 1},
        {"t": "2024-07-01T14:32:00Z", "o": 1, "h": 1, "l": 1, "c": 214.9, "v": 1}]}})
    history = AlpacaHistory(credentials(), bucket=TokenBucket(sleep=lambda s: None),
                            sleep=lambda s: None)
    broker = AsyncAlpaca(AlpacaTrading(credentials()), history=history)
    minute = parse_timeframe("1Min")
    received = []

    async def on_bar(bar, received_ns):
        received.append((bar.t, bar.c))

    async def between(symbols, start_ns, end_ns):
        return await broker.bars_between(symbols, minute, start_ns, end_ns)

    async def scenario():
        async with StreamPeer("data", scripts) as peer:
            stream = BarStream(credentials(), ["AAPL"], on_bar, url=peer.url, backoff=FAST,
                               bars_between=between, clock=lambda: now[0])
            await collect_until(stream, received, 4)
            return peer, stream

    try:
        peer, stream = asyncio.run(scenario())
    finally:
        broker.close()
    assert received == [("2024-07-01T14:30:00Z", 214.5), ("2024-07-01T14:31:00Z", 214.7),
                        ("2024-07-01T14:32:00Z", 214.9), ("2024-07-01T14:33:00Z", 215.1)]
    assert peer.connections == 3 and stream.backfilled == 2


def test_bar_stream_when_keys_refused_then_auth_error_and_no_retry():
    async def scenario():
        async with StreamPeer("data", [[]], secret="another-secret") as peer:
            stream = BarStream(credentials(), ["AAPL"], lambda b, n: None, url=peer.url,
                               backoff=FAST)
            with pytest.raises(StreamAuthError, match="402 auth failed"):
                await asyncio.wait_for(stream.run(), 5)
            return peer

    assert asyncio.run(scenario()).connections == 1


def order(name: str, **changes) -> dict:
    return {**load(name), **changes}


@responses.activate
def test_trade_stream_when_disconnected_then_backfills_missed_fills_exactly_once():
    a_new = order("order_new", status="new")
    a_partial = order("order_partially_filled")
    a_filled = order("order_filled")
    b_canceled = order("order_new", id="b-0001", client_order_id="ft-b", symbol="MSFT",
                       status="canceled", canceled_at="2024-07-01T14:30:02Z")
    c_new = order("order_new", id="c-0001", client_order_id="ft-c", symbol="TSLA", status="new")
    scripts = [
        [trade_update("new", a_new, "2024-07-01T14:30:00.125Z"),
         trade_update("partial_fill", a_partial, "2024-07-01T14:30:00.4Z",
                      execution_id="exec-1", price="214.30", qty="4", position_qty="4"),
         DROP],
        # After the reconnect: a late copy of A's final fill (already backfilled: dropped),
        # then something new.
        [trade_update("fill", a_filled, "2024-07-01T14:30:00.512345678Z",
                      execution_id="exec-2", price="214.3833", qty="6", position_qty="10"),
         trade_update("new", c_new, "2024-07-01T14:30:03Z")],
    ]
    # The orders endpoint: nothing missed at the first connection; A filled and B
    # canceled while disconnected (responses serves these in turn, then repeats the last).
    responses.get(f"{PAPER}/orders", json=[])
    responses.get(f"{PAPER}/orders", json=[a_filled, b_canceled, c_new])
    broker = AsyncAlpaca(AlpacaTrading(credentials(), bucket=TokenBucket(sleep=lambda s: None)))
    ctx = Context("live", "execution", "paper")
    delivered = []

    async def on_update(update, received_ns, backfilled):
        delivered.append((update.event, update.order.client_order_id, backfilled))
        translation = trade_update_events(update, None, ctx, "paper", "paper", received_ns)
        events.extend(translation.events)

    events = []

    async def scenario():
        async with StreamPeer("trading", scripts) as peer:
            stream = TradeUpdateStream(credentials(), on_update, broker.orders_since,
                                       url=peer.url, backoff=FAST,
                                       session_start="2024-07-01T13:30:00Z")
            await collect_until(stream, delivered, 6)
            await asyncio.sleep(0.1)   # anything more would be a duplicate
            return peer

    try:
        peer = asyncio.run(scenario())
    finally:
        broker.close()
    assert delivered == [
        ("new", "ft-0f4c2a9d", False),
        ("partial_fill", "ft-0f4c2a9d", False),
        ("fill", "ft-0f4c2a9d", True),        # backfilled: the 6 shares filled in the gap
        ("new", "ft-b", True), ("canceled", "ft-b", True),
        ("new", "ft-c", True),                # the live copy of this one is then dropped
    ]
    fills = [e for e in events if isinstance(e, FillExecuted)]
    assert sum(f.quantity for f in fills) == Decimal(10)
    assert sum(f.quantity * f.price for f in fills) == Decimal("2143.50")   # avg 214.35
    assert [type(e) for e in events] == [OrderAccepted, FillExecuted, OrderPartiallyFilled,
                                         FillExecuted, OrderFilled, OrderAccepted,
                                         OrderCanceled, OrderAccepted]
    assert len({e.event_id for e in events}) == len(events)
    assert peer.connections == 2
    queries = [c.request.params for c in responses.calls]
    assert all(q["status"] == "all" and q["after"] == "2024-07-01T13:30:00Z" for q in queries)
    assert [m["action"] for m in peer.received] == ["auth", "listen", "auth", "listen"]


@responses.activate
def test_trade_stream_backfill_when_bracket_filled_in_the_gap_then_legs_follow_their_parent():
    from connectors.alpaca.config import AlpacaConfig
    from connectors.alpaca.execution import AlpacaExecution
    from connectors.alpaca.reports import trade_update_report
    from tests.factories import place_order

    placed = place_order("AAPL", strategy="sma_cross", quantity="10",
                         take_profit=Decimal(230), stop_loss=Decimal(200))
    leg = {"symbol": "AAPL", "qty": "10", "side": "sell", "order_class": "bracket"}
    take_profit = order("order_new", id="tp-1", client_order_id="alpaca-tp-uuid", **leg,
                        type="limit", status="filled", filled_qty="10",
                        filled_avg_price="230", filled_at="2024-07-01T15:00:00Z")
    stop_loss = order("order_new", id="sl-1", client_order_id="alpaca-sl-uuid", **leg,
                      type="stop", status="canceled", canceled_at="2024-07-01T15:00:00Z")
    parent = order("order_filled", client_order_id=placed.client_order_id,
                   order_class="bracket", legs=[take_profit, stop_loss])
    # Nothing at the first connection; after the reconnect, the whole bracket is done.
    responses.get(f"{PAPER}/orders", json=[])
    responses.get(f"{PAPER}/orders", json=[parent])
    broker = AsyncAlpaca(AlpacaTrading(credentials(), bucket=TokenBucket(sleep=lambda s: None)))
    execution = AlpacaExecution(Context("live", "execution", "paper"),
                                AlpacaConfig(balance_check="warn"))
    assert type(execution.on_order(placed)[0]).__name__ == "OrderSubmitted"
    reports_ctx = Context("live", "broker", "paper")
    delivered, fills = [], []

    async def on_update(update, received_ns, backfilled):
        delivered.append((update.event, update.order.client_order_id))
        report = trade_update_report(update, reports_ctx, "paper", received_ns, backfilled)
        fills.extend(e for e in execution.on_trade_update(report)
                     if isinstance(e, FillExecuted))

    async def scenario():
        async with StreamPeer("trading", [[DROP], []]) as peer:
            stream = TradeUpdateStream(credentials(), on_update, broker.orders_since,
                                       url=peer.url, backoff=FAST,
                                       session_start="2024-07-01T13:30:00Z")
            await collect_until(stream, delivered, 6)

    try:
        asyncio.run(scenario())
    finally:
        broker.close()
    cid = placed.client_order_id
    assert delivered == [("new", cid), ("fill", cid),
                         ("new", "alpaca-tp-uuid"), ("fill", "alpaca-tp-uuid"),
                         ("new", "alpaca-sl-uuid"), ("canceled", "alpaca-sl-uuid")]
    assert [(f.client_order_id, f.side, f.strategy) for f in fills] == [
        (cid, "BUY", "sma_cross"), ("alpaca-tp-uuid", "SELL", "sma_cross")]
    assert all(c.request.params["nested"] == "true" for c in responses.calls)
