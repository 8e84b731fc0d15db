"""Alpaca's synchronous calls, awaited without blocking the event loop.

alpaca-py blocks; the live runtime is asyncio. Every call runs in a bounded thread pool
and the caller waits at most `timeout` seconds (retries and backoff included). Orders
have a pool of their own, so a submission never queues behind reads (account refreshes,
backfills) and a slow broker call never stalls the market-data stream, which touches
the read pool only for its bar backfill after a reconnect.

A timed-out call keeps running in its thread until its HTTP timeout; its outcome is
unknown, which is exactly the case the idempotent submit and the stream backfill handle.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from connectors.alpaca import wire
from connectors.alpaca.client import AlpacaTrading, SubmitOutcome
from connectors.alpaca.errors import BrokerTimeout, BrokerUnavailable
from connectors.alpaca.history import AlpacaHistory
from connectors.alpaca.timeframes import Timeframe
from schemas.orders import PlaceOrder

T = TypeVar("T")
DEFAULT_TIMEOUT = 20.0
_NS = 1_000_000_000


class AsyncAlpaca:
    """Awaitable facade over AlpacaTrading with bounded pools and timeouts."""

    def __init__(self, trading: AlpacaTrading, *, history: AlpacaHistory | None = None,
                 order_workers: int = 2, read_workers: int = 2,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.trading = trading
        self.history = history
        self.timeout = timeout
        self._orders = ThreadPoolExecutor(order_workers, thread_name_prefix="alpaca-order")
        self._reads = ThreadPoolExecutor(read_workers, thread_name_prefix="alpaca-read")

    async def submit(self, order: PlaceOrder) -> SubmitOutcome:
        """Idempotent submit (see AlpacaTrading.submit) on the order pool."""
        return await self._run(self._orders, f"submit {order.client_order_id}",
                               self.trading.submit, order)

    async def account(self) -> wire.Account:
        return await self._run(self._reads, "account", self.trading.account)

    async def positions(self) -> list[wire.Position]:
        return await self._run(self._reads, "positions", self.trading.positions)

    async def open_orders(self) -> list[wire.Order]:
        return await self._run(self._reads, "open orders", self.trading.open_orders)

    async def orders_since(self, after: str) -> list[wire.Order]:
        return await self._run(self._reads, "orders since", self.trading.orders_since, after)

    async def order_by_client_id(self, client_order_id: str) -> wire.Order | None:
        return await self._run(self._reads, f"lookup {client_order_id}",
                               self.trading.order_by_client_id, client_order_id)

    async def bars_between(self, symbols: list[str], timeframe: Timeframe, start_ns: int,
                           end_ns: int, feed: str = "iex"
                           ) -> list[tuple[str, wire.HistoricalBar]]:
        """Every historical bar of `symbols` starting in [start, end] (all pages), as
        (symbol, bar) pairs: the source of the backfill after a market-data disconnect."""
        if self.history is None:
            raise BrokerUnavailable("no market-data client to backfill bars from")
        history = self.history

        def fetch() -> list[tuple[str, wire.HistoricalBar]]:
            start = datetime.fromtimestamp(start_ns // _NS, UTC)
            end = datetime.fromtimestamp(-(-end_ns // _NS), UTC)
            return [(symbol, bar)
                    for page in history.bars(symbols, timeframe, start, end, feed)
                    for symbol, series in (page.bars or {}).items() for bar in series]

        return await self._run(self._reads, "bars", fetch)

    async def _run(self, pool: ThreadPoolExecutor, what: str, fn: Callable[..., T],
                   *args: Any) -> T:
        future = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise BrokerTimeout(f"Alpaca call '{what}' took longer than {self.timeout:g} s; "
                                f"its outcome is unknown") from None

    def close(self) -> None:
        """Stop taking calls; running ones finish in their threads (not waited for)."""
        self._orders.shutdown(wait=False, cancel_futures=True)
        self._reads.shutdown(wait=False, cancel_futures=True)
