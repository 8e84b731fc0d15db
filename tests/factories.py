"""Event factories for tests: one place that knows how to build a valid event."""
from __future__ import annotations

from decimal import Decimal
from itertools import count

import schemas as s

RUN = "test-run"
ACCOUNT = "paper"
MINUTE = 60_000_000_000
DAY = 24 * 3600 * 1_000_000_000
T0 = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC (09:30 New York)

_seq = count()


def header(ts: int = T0, producer: str = "test", event_id: str | None = None,
           cause: str = "", correlation: str | None = None) -> dict:
    eid = event_id or f"e{next(_seq)}"
    return dict(event_id=eid, ts_event=ts, ts_init=ts, correlation_id=correlation or eid,
                causation_id=cause, producer=producer, run_id=RUN)


def bar(symbol: str = "AAA", ts: int = T0, open: float = 100.0, high: float | None = None,
        low: float | None = None, close: float | None = None, volume: float = 10_000.0) -> s.Bar:
    close = open if close is None else close
    high = max(open, close) if high is None else high
    low = min(open, close) if low is None else low
    return s.Bar(**header(ts, "feed", event_id=f"{symbol}:{ts}"), symbol=symbol, open=open,
                 high=high, low=low, close=close, volume=volume)


def bars_from_closes(closes, symbol: str = "AAA", start: int = T0, step: int = DAY) -> list[s.Bar]:
    """Bars whose open, high, low and close all equal the given closes."""
    return [bar(symbol, start + i * step, open=c, close=c) for i, c in enumerate(closes)]


def submit_order(symbol: str = "AAA", side: str = "BUY", quantity="100", ts: int = T0,
                 strategy: str = "test", ref_price: float = 100.0, **terms) -> s.SubmitOrder:
    h = header(ts, "allocator")
    return s.SubmitOrder(**h, client_order_id=f"c-{h['event_id']}", account=ACCOUNT,
                         strategy=strategy, symbol=symbol, side=side, quantity=Decimal(quantity),
                         ref_price=ref_price, **terms)


def place_order(symbol: str = "AAA", side: str = "BUY", quantity="100", ts: int = T0,
                strategy: str = "test", **terms) -> s.PlaceOrder:
    h = header(ts, "risk")
    return s.PlaceOrder(**h, client_order_id=f"c-{h['event_id']}", account=ACCOUNT,
                        strategy=strategy, symbol=symbol, side=side, quantity=Decimal(quantity),
                        **terms)


def fill(symbol: str = "AAA", side: str = "BUY", quantity="100", price="100", commission="0",
         ts: int = T0, strategy: str = "test", leaves="0",
         client_order_id: str | None = None) -> s.FillExecuted:
    h = header(ts, "execution")
    return s.FillExecuted(**h, fill_id=f"f-{h['event_id']}",
                          client_order_id=client_order_id or f"c-{h['event_id']}",
                          broker_order_id="b", account=ACCOUNT, strategy=strategy, symbol=symbol,
                          side=side, quantity=Decimal(quantity), price=Decimal(price),
                          commission=Decimal(commission), leaves_quantity=Decimal(leaves))
