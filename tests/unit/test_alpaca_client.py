"""The trading client against recorded responses: idempotent submit, 429s, rate limit."""
from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from connectors.alpaca.client import AlpacaTrading
from connectors.alpaca.errors import BrokerTimeout, BrokerUnavailable
from connectors.alpaca.executor import AsyncAlpaca
from connectors.alpaca.ratelimit import Backoff, TokenBucket
from tests import factories as f
from tests.fixtures.alpaca.recorded import PAPER, credentials, load, text

BY_CLIENT_ID = f"{PAPER}/orders:by_client_order_id"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def trading(clock: FakeClock | None = None, **options) -> AlpacaTrading:
    clock = clock or FakeClock()
    bucket = TokenBucket(clock=clock, sleep=clock.sleep)
    return AlpacaTrading(credentials(), bucket=bucket, backoff=Backoff(0.5, 30),
                         sleep=clock.sleep, **options)


def order():
    o = f.place_order("AAPL", "BUY", "10")
    return type(o)(**{**{k: getattr(o, k) for k in o.__struct_fields__},
                      "client_order_id": "ft-0f4c2a9d"})


def not_found():
    responses.get(BY_CLIENT_ID, body=text("error_order_not_found"), status=404)


def posts() -> list:
    return [c for c in responses.calls if c.request.method == "POST"]


@responses.activate
def test_submit_when_order_unknown_then_posted_once_with_its_client_order_id():
    not_found()
    responses.post(f"{PAPER}/orders", json=load("order_new"),
                   match=[matchers.json_params_matcher(
                       {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market",
                        "time_in_force": "gtc", "client_order_id": "ft-0f4c2a9d"})])
    outcome = trading().submit(order())
    assert outcome.order.id == "61e69015-8549-4bfd-b9c3-01e75843f47d"
    assert not outcome.existing and outcome.rejection == ""
    assert len(posts()) == 1


@responses.activate
def test_submit_when_order_already_at_alpaca_then_not_posted_again():
    responses.get(BY_CLIENT_ID, json=load("order_filled"),
                  match=[matchers.query_param_matcher({"client_order_id": "ft-0f4c2a9d"})])
    outcome = trading().submit(order())
    assert outcome.existing and outcome.order.status == "filled"
    assert posts() == []


@responses.activate
def test_submit_when_504_but_order_was_placed_then_found_and_no_duplicate():
    not_found()
    responses.post(f"{PAPER}/orders", body="upstream timeout", status=504)
    responses.get(BY_CLIENT_ID, json=load("order_new"))   # the 504 had gone through
    outcome = trading().submit(order())
    assert outcome.existing and outcome.attempts == 2
    assert len(posts()) == 1   # alpaca-py's own blind re-POST is switched off


@responses.activate
def test_submit_when_connection_drops_then_looks_up_before_resubmitting():
    not_found()
    responses.post(f"{PAPER}/orders", body=requests.ConnectionError("reset by peer"))
    not_found()
    responses.post(f"{PAPER}/orders", json=load("order_new"))
    outcome = trading().submit(order())
    assert outcome.order is not None and outcome.attempts == 2
    methods = [c.request.method for c in responses.calls]
    assert methods == ["GET", "POST", "GET", "POST"]


@responses.activate
def test_submit_when_429_then_backs_off_and_succeeds():
    clock = FakeClock()
    not_found()
    responses.post(f"{PAPER}/orders", body=text("error_rate_limit"), status=429)
    not_found()
    responses.post(f"{PAPER}/orders", json=load("order_new"))
    outcome = trading(clock).submit(order())
    assert outcome.order is not None and len(posts()) == 2
    assert 0.5 in clock.slept          # the backoff of the first attempt


@responses.activate
def test_submit_when_insufficient_buying_power_then_rejection_with_alpacas_reason():
    not_found()
    responses.post(f"{PAPER}/orders", body=text("error_insufficient_buying_power"), status=403)
    outcome = trading().submit(order())
    assert outcome.order is None and outcome.rejection == "insufficient buying power"
    assert len(posts()) == 1


@responses.activate
def test_submit_when_alpaca_says_duplicate_then_returns_the_existing_order():
    responses.post(f"{PAPER}/orders", body=text("error_duplicate_client_order_id"), status=422)
    responses.get(BY_CLIENT_ID, json=load("order_new"))
    outcome = trading(lookup_first=False).submit(order())
    assert outcome.existing and outcome.order.client_order_id == "ft-0f4c2a9d"


@responses.activate
def test_submit_when_broker_keeps_failing_then_unavailable_after_the_attempts():
    for _ in range(3):
        not_found()
        responses.post(f"{PAPER}/orders", body="bad gateway", status=502)
    with pytest.raises(BrokerUnavailable, match="not confirmed after 3 attempts"):
        trading(attempts=3).submit(order())
    assert len(posts()) == 3


@responses.activate
def test_reads_when_called_then_exact_wire_structs_and_a_timeout_on_every_request():
    responses.get(f"{PAPER}/positions", json=load("positions"))
    responses.get(f"{PAPER}/orders", json=load("orders_open"),
                  match=[matchers.query_param_matcher({"status": "open", "limit": "500"})])
    client = trading(http_timeout=7.5)
    positions, orders = client.positions(), client.open_orders()
    assert [(p.symbol, p.qty) for p in positions] == [("AAPL", Decimal(10)), ("TSLA", Decimal(-3))]
    assert [o.client_order_id for o in orders] == ["ft-0f4c2a9d", "web-manual-1"]
    assert all(c.request.req_kwargs["timeout"] == 7.5 for c in responses.calls)


def test_token_bucket_when_saturated_then_never_more_than_the_limit_per_minute():
    clock = FakeClock()
    bucket = TokenBucket(200, burst=10, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(600):
        bucket.acquire()
        stamps.append(clock.now)
    # Slide a 60-second window over every request time.
    worst = max(sum(1 for s in stamps if start <= s < start + 60) for start in stamps)
    assert worst <= 200
    # The burst less the 2 tokens kept for orders, then the refill rate.
    assert stamps[7] == 0.0 and stamps[8] > 0


def test_token_bucket_when_429_drained_then_next_request_waits():
    clock = FakeClock()
    bucket = TokenBucket(200, burst=10, clock=clock, sleep=clock.sleep)
    bucket.drain()
    assert bucket.acquire(priority=True) == pytest.approx(60 / 190)
    bucket.drain()
    assert bucket.acquire() == pytest.approx(3 * 60 / 190)   # a read leaves the reserve


def test_token_bucket_when_reads_took_all_they_may_then_orders_still_do_not_wait():
    clock = FakeClock()
    bucket = TokenBucket(200, burst=10, reserve=2, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire() for _ in range(8)] == [0.0] * 8
    assert bucket.acquire(priority=True) == 0.0 and bucket.acquire(priority=True) == 0.0
    assert clock.slept == []
    assert bucket.acquire(priority=True) > 0      # only orders can empty it


@responses.activate
def test_submit_when_reads_saturated_the_rate_limit_then_order_goes_without_waiting():
    clock = FakeClock()
    client = trading(clock)
    responses.get(f"{PAPER}/account", json=load("account_paper"))
    for _ in range(8):
        client.account()
    assert clock.slept == []          # reads took all but the order reserve
    not_found()
    responses.post(f"{PAPER}/orders", json=load("order_new"))
    outcome = client.submit(order())
    assert outcome.order is not None and clock.slept == []   # lookup + POST: no wait
    client.account()                  # the next read waits for the refill
    assert len(clock.slept) == 1 and clock.slept[0] > 0


def test_token_bucket_when_reserve_too_large_then_reads_keep_one_token():
    bucket = TokenBucket(200, burst=3, reserve=5)
    assert bucket.reserve == 2


class SlowTrading:
    """Stands in for AlpacaTrading: reads block until released, submits are instant."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def account(self):
        self.release.wait(5)
        return "account"

    def submit(self, placed):
        return f"submitted {placed.symbol}"


def test_async_call_when_broker_slow_then_times_out_without_blocking_the_loop():
    slow = SlowTrading()
    broker = AsyncAlpaca(slow, timeout=0.2)

    async def scenario():
        ticks = 0

        async def heartbeat():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        started = time.monotonic()
        with pytest.raises(BrokerTimeout, match="outcome is unknown"):
            await broker.account()
        beat.cancel()
        return time.monotonic() - started, ticks

    try:
        elapsed, ticks = asyncio.run(scenario())
    finally:
        slow.release.set()
        broker.close()
    assert elapsed < 1.0 and ticks >= 5   # the loop kept running while the call hung


def test_async_submit_when_reads_are_stuck_then_order_still_goes_through():
    slow = SlowTrading()
    broker = AsyncAlpaca(slow, read_workers=1, timeout=2)

    async def scenario():
        stuck = [asyncio.ensure_future(broker.account()) for _ in range(3)]
        await asyncio.sleep(0.05)
        result = await asyncio.wait_for(broker.submit(f.place_order("AAPL")), 0.5)
        slow.release.set()
        await asyncio.gather(*stuck)
        return result

    try:
        assert asyncio.run(scenario()) == "submitted AAPL"
    finally:
        slow.release.set()
        broker.close()
