"""Alpaca's two websocket streams, spoken directly, with reconnects and a backfill.

- Market data (wss://stream.data.alpaca.markets/v2/{iex|sip}): server says
  [{"T":"success","msg":"connected"}]; we send {"action":"auth","key","secret"}, get
  [{"T":"success","msg":"authenticated"}], send {"action":"subscribe","bars":[...]}, get
  [{"T":"subscription",...}], then arrays of messages, bars as {"T":"b",...}.
- Trading (wss://paper-api.alpaca.markets/stream): we send {"action":"auth",...}, get
  {"stream":"authorization","data":{"status":"authorized"}}, send
  {"action":"listen","data":{"streams":["trade_updates"]}}, get {"stream":"listening"},
  then {"stream":"trade_updates","data":{...}} (text or binary frames).

alpaca-py's StockDataStream/TradingStream are not used: they reconnect on their own with
no hook to backfill what was missed, and use the deprecated websockets.legacy API.

A dropped connection is retried with exponential backoff (reset after a successful
subscription). Market data missed while disconnected is not backfilled here (the bar
after the gap simply arrives); trade updates are: after every (re)connection the orders
endpoint is read and `parse.missed_updates` turns what changed into the updates the
stream would have sent, and live updates that repeat them are dropped
(`parse.already_seen`). Authentication failures are not retried: they will not heal.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from connectors.alpaca import wire
from connectors.alpaca.credentials import AlpacaCredentials
from connectors.alpaca.errors import AlpacaError
from connectors.alpaca.parse import SeenOrder, already_seen, missed_updates, seen_after
from connectors.alpaca.ratelimit import Backoff

DATA_STREAM_URL = "wss://stream.data.alpaca.markets/v2/iex"
PAPER_TRADING_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_TRADING_STREAM_URL = "wss://api.alpaca.markets/stream"
_data_messages = msgspec.json.Decoder(list[msgspec.Raw])
_data_message = msgspec.json.Decoder(wire.DataMessage)
_RETRYABLE = (ConnectionClosed, OSError, InvalidHandshake, asyncio.TimeoutError)

OnBar = Callable[[wire.StreamBar, int], Awaitable[None]]
OnUpdate = Callable[[wire.TradeUpdate, int, bool], Awaitable[None]]
OrdersSince = Callable[[str], Awaitable[list[wire.Order]]]


class StreamAuthError(AlpacaError):
    """The stream refused the keys: not retried."""


class _Reconnecting:
    """The reconnect loop both streams share: connect, session, backoff, again."""

    def __init__(self, url: str, credentials: AlpacaCredentials, backoff: Backoff | None,
                 max_reconnects: int | None, handshake_timeout: float) -> None:
        self.url = url
        self._credentials = credentials
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._max_reconnects = max_reconnects
        self._timeout = handshake_timeout
        self.connections = 0       # successful sessions so far (tests and metrics)
        self.stopped = asyncio.Event()
        self._socket = None

    def _auth(self) -> str:
        return json.dumps({"action": "auth", "key": self._credentials.key_id.reveal(),
                           "secret": self._credentials.secret_key.reveal()})

    async def run(self) -> None:
        """Until `stop()` (or `max_reconnects` failures in a row)."""
        failures = 0
        while not self.stopped.is_set():
            sessions = self.connections
            try:
                async with connect(self.url, open_timeout=self._timeout,
                                   close_timeout=1) as socket:
                    self._socket = socket
                    await self._session(socket)
            except _RETRYABLE:
                pass
            if self.stopped.is_set():
                return
            # A session that got as far as subscribing resets the backoff.
            failures = 1 if self.connections > sessions else failures + 1
            if self._max_reconnects is not None and failures > self._max_reconnects:
                raise AlpacaError(f"stream {self.url}: gave up after {failures - 1} reconnects")
            try:
                await asyncio.wait_for(self.stopped.wait(),
                                       self._backoff.delay(min(failures - 1, 10)))
            except TimeoutError:
                pass

    async def stop(self) -> None:
        """End `run`: no reconnect, and the open connection is closed cleanly."""
        self.stopped.set()
        if self._socket is not None:
            await self._socket.close()

    async def _recv(self, socket) -> bytes:
        message = await asyncio.wait_for(socket.recv(), self._timeout)
        return message.encode() if isinstance(message, str) else message

    async def _session(self, socket) -> None:   # pragma: no cover - abstract
        raise NotImplementedError


class BarStream(_Reconnecting):
    """Live bars of `symbols`; `on_bar(bar, received_ns)` for each."""

    def __init__(self, credentials: AlpacaCredentials, symbols: list[str], on_bar: OnBar, *,
                 url: str = DATA_STREAM_URL, backoff: Backoff | None = None,
                 max_reconnects: int | None = None, handshake_timeout: float = 10.0,
                 clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(url, credentials, backoff, max_reconnects, handshake_timeout)
        self.symbols = symbols
        self._on_bar = on_bar
        self._clock = clock

    async def _session(self, socket) -> None:
        await self._expect(socket, "connected")
        await socket.send(self._auth())
        await self._expect(socket, "authenticated")
        await socket.send(json.dumps({"action": "subscribe", "bars": self.symbols}))
        async for frame in socket:
            received = self._clock()
            for raw in _data_messages.decode(frame):
                try:
                    message = _data_message.decode(raw)
                except msgspec.ValidationError:
                    continue    # trades, quotes, statuses...: not subscribed to or not used
                if isinstance(message, wire.StreamBar):
                    await self._on_bar(message, received)
                elif isinstance(message, wire.StreamSubscription):
                    self.connections += 1
                elif isinstance(message, wire.StreamError):
                    raise AlpacaError(f"market-data stream error {message.code}: {message.msg}")
            if self.stopped.is_set():
                return

    async def _expect(self, socket, wanted: str) -> None:
        for raw in _data_messages.decode(await self._recv(socket)):
            message = _data_message.decode(raw)
            if isinstance(message, wire.StreamError):
                error = f"market-data stream refused: {message.code} {message.msg}"
                if message.code in (401, 402, 403, 404):   # not authenticated / auth failed
                    raise StreamAuthError(error)
                raise ConnectionError(error)               # e.g. 406 connection limit: retry
            if isinstance(message, wire.StreamControl) and message.msg == wanted:
                return
        raise ConnectionError(f"market-data stream: expected {wanted!r}")


class TradeUpdateStream(_Reconnecting):
    """Trade updates; `on_update(update, received_ns, backfilled)` for each, in order.

    Keeps what it has told its consumer about each order (SeenOrder) so that after a
    reconnect the backfill delivers exactly what was missed, once.
    """

    def __init__(self, credentials: AlpacaCredentials, on_update: OnUpdate,
                 orders_since: OrdersSince, *, url: str = PAPER_TRADING_STREAM_URL,
                 backoff: Backoff | None = None, max_reconnects: int | None = None,
                 handshake_timeout: float = 10.0, session_start: str = "",
                 clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(url, credentials, backoff, max_reconnects, handshake_timeout)
        self._on_update = on_update
        self._orders_since = orders_since
        self._clock = clock
        self.seen: dict[str, SeenOrder] = {}
        # Alpaca's `after` filters on submission time, so the backfill must reach back to
        # the session's start: an order submitted earlier may have filled in the gap.
        self.session_start = session_start

    async def _session(self, socket) -> None:
        await socket.send(self._auth())
        reply = wire.trading_message_decoder.decode(await self._recv(socket))
        status = json.loads(bytes(reply.data) or b"{}").get("status")
        if reply.stream != "authorization" or status != "authorized":
            raise StreamAuthError(f"trading stream refused the keys (status {status!r})")
        await socket.send(json.dumps({"action": "listen",
                                      "data": {"streams": ["trade_updates"]}}))
        reply = wire.trading_message_decoder.decode(await self._recv(socket))
        if reply.stream != "listening":
            raise ConnectionError(f"trading stream: expected 'listening', got {reply.stream!r}")
        self.connections += 1
        # Listening first, then backfilling: nothing falls between the two; what both
        # deliver is dropped by `already_seen`.
        await self._backfill()
        async for frame in socket:
            message = wire.trading_message_decoder.decode(
                frame.encode() if isinstance(frame, str) else frame)
            if message.stream != "trade_updates":
                continue
            update = wire.trade_update_decoder.decode(message.data)
            await self._deliver(update, backfilled=False)
            if self.stopped.is_set():
                return

    async def _backfill(self) -> None:
        if not self.session_start:
            return
        for order in await self._orders_since(self.session_start):
            for update in missed_updates(order, self.seen.get(order.id)):
                await self._deliver(update, backfilled=True)

    async def _deliver(self, update: wire.TradeUpdate, backfilled: bool) -> None:
        seen = self.seen.get(update.order.id)
        if already_seen(update, seen):
            return
        self.seen[update.order.id] = seen_after(update, seen)
        await self._on_update(update, self._clock(), backfilled)
