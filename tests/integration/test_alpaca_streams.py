"""The stream code end to end against a local websocket peer speaking Alpaca's protocol,
including a disconnect in the middle and the backfill from the orders endpoint after it."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import responses

from agents.context import Context
from connectors.alpaca.client import AlpacaTrading
from connectors.alpaca.executor import AsyncAlpaca
from connectors.alpaca.parse import stream_bar_event, trade_update_events
from connectors.alpaca.ratelimit import Backoff, TokenBucket
from connectors.alpaca.stream import BarStream, StreamAuthError, TradeUpdateStream
from connectors.alpaca.timeframes import parse_timeframe
from schemas import FillExecuted, OrderAccepted, OrderCanceled, OrderFilled, OrderPartiallyFilled
from tests.fixtures.alpaca.recorded import PAPER, credentials, load
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
