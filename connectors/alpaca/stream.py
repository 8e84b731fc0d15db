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
subscription and backfill). What was missed while disconnected is backfilled once the
new connection is subscribed (so nothing falls between the two; live messages wait in
the socket meanwhile):
- bars from the historical bars endpoint (`bars_between`): every bar of the gap that has
  closed, in time order, each symbol from just after the last bar delivered for it;
  a bar at or before a symbol's last delivered one (the backfill's, or a live copy of
  it) is dropped, so no bar is delivered twice;
- trade updates from the orders endpoint: `parse.missed_updates` turns what changed into
  the updates the stream would have sent, and live updates that repeat them are dropped
  (`parse.already_seen`).
Authentication failures are not retried: they will not heal.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec
import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from connectors.alpaca import wire
from connectors.alpaca.credentials import AlpacaCredentials
from connectors.alpaca.errors import AlpacaError, BrokerRefused, BrokerUnavailable
from connectors.alpaca.parse import (
    SeenOrder, already_seen, missed_updates, rfc3339_ns, seen_after, stream_bar_of,
)
from connectors.alpaca.ratelimit import Backoff
from connectors.alpaca.timeframes import Timeframe, parse_timeframe

DATA_STREAM_URL = "wss://stream.data.alpaca.markets/v2/iex"
PAPER_TRADING_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_TRADING_STREAM_URL = "wss://api.alpaca.markets/stream"
_data_messages = msgspec.json.Decoder(list[msgspec.Raw])
_data_message = msgspec.json.Decoder(wire.DataMessage)
_RETRYABLE = (ConnectionClosed, OSError, InvalidHandshake, asyncio.TimeoutError)

logger = structlog.get_logger("firetape.alpaca.stream")

OnBar = Callable[[wire.StreamBar, int], Awaitable[None]]
# (symbols, start_ns, end_ns) -> every historical bar starting in [start, end], by symbol.
BarsBetween = Callable[[list[str], int, int],
                       Awaitable[list[tuple[str, wire.HistoricalBar]]]]
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
    """Live bars of `symbols`; `on_bar(bar, received_ns)` for each, never twice.

    With `bars_between` (the historical bars endpoint), every reconnection backfills the
    bars that closed while disconnected before any live bar is taken.
    """

    def __init__(self, credentials: AlpacaCredentials, symbols: list[str], on_bar: OnBar, *,
                 url: str = DATA_STREAM_URL, backoff: Backoff | None = None,
                 max_reconnects: int | None = None, handshake_timeout: float = 10.0,
                 bars_between: BarsBetween | None = None,
                 timeframe: Timeframe | None = None,
                 clock: Callable[[], int] = time.time_ns,
                 taken_until: Mapping[str, int] | None = None) -> None:
        super().__init__(url, credentials, backoff, max_reconnects, handshake_timeout)
        self.symbols = symbols
        self._on_bar = on_bar
        self._bars_between = bars_between
        self._timeframe = timeframe or parse_timeframe("1Min")
        self._clock = clock
        # Per symbol: the start time just after the last bar delivered (bars arrive in
        # time order per symbol, so anything earlier is a repeat). `taken_until` (symbol
        # -> close time of the last bar a run this one continues took) counts as
        # delivered: a restart never takes a bar twice.
        self._next_start: dict[str, int] = {
            symbol: self._timeframe.start_ns(close) + 1
            for symbol, close in (taken_until or {}).items()}
        self._inherited = set(self._next_start)   # ...and no bar of theirs in this session
        self._first_subscribed_ns: int | None = None
        self.backfilled = 0        # bars delivered by backfills (tests and metrics)

    async def _session(self, socket) -> None:
        await self._expect(socket, "connected")
        await socket.send(self._auth())
        await self._expect(socket, "authenticated")
        await socket.send(json.dumps({"action": "subscribe", "bars": self.symbols}))
        async for frame in socket:
            for raw in _data_messages.decode(frame):
                try:
                    message = _data_message.decode(raw)
                except msgspec.ValidationError:
                    continue    # trades, quotes, statuses...: not subscribed to or not used
                if isinstance(message, wire.StreamBar):
                    await self._deliver(message)
                elif isinstance(message, wire.StreamSubscription):
                    # Subscribed first, then backfilled: nothing falls between the two.
                    await self._backfill()
                    self.connections += 1
                elif isinstance(message, wire.StreamError):
                    raise AlpacaError(f"market-data stream error {message.code}: {message.msg}")
            if self.stopped.is_set():
                return

    async def _deliver(self, bar: wire.StreamBar) -> bool:
        start = rfc3339_ns(bar.t)
        if start < self._next_start.get(bar.S, start):
            return False     # resent after a reconnect, or already backfilled
        self._next_start[bar.S] = start + 1
        self._inherited.discard(bar.S)
        await self._on_bar(bar, self._clock())
        return True

    async def _backfill(self) -> None:
        """The bars that closed while disconnected, oldest first (none at the first
        connection: the session starts there)."""
        now = self._clock()
        if self._first_subscribed_ns is None:
            self._first_subscribed_ns = now
            return
        if self._bars_between is None:
            return
        # A symbol with no bar yet: from the bar that was open at the first subscription
        # (the first one the stream would have sent).
        since = self._first_subscribed_ns - self._timeframe.length_ns + 1
        # (What closed between two runs is not this session's: an inherited mark is not
        # a place to backfill from.)
        lower = {symbol: since if symbol in self._inherited
                 else self._next_start.get(symbol, since) for symbol in self.symbols}
        try:
            found = await self._bars_between(list(self.symbols), min(lower.values()), now)
        except BrokerRefused as refused:
            # Will not heal by retrying (e.g. the data subscription): go on live, say so.
            logger.warning("bars.backfill_refused", url=self.url, error=str(refused))
            return
        except BrokerUnavailable as unknown:
            # Reconnect (with backoff) and try again: no live bar was taken meanwhile.
            raise ConnectionError(f"bar backfill failed: {unknown}") from None
        rank = {symbol: index for index, symbol in enumerate(self.symbols)}
        missed = []
        for symbol, bar in found:
            start = rfc3339_ns(bar.t)
            if (symbol in rank and start >= lower[symbol]
                    and self._timeframe.close_ns(start) <= now):   # closed bars only
                missed.append((start, rank[symbol], symbol, bar))
        missed.sort(key=lambda item: item[:2])
        delivered = 0
        for _, _, symbol, bar in missed:
            delivered += await self._deliver(stream_bar_of(symbol, bar))
        self.backfilled += delivered
        if delivered:
            logger.info("bars.backfilled", bars=delivered, url=self.url)

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

    `taken_over`: orders submitted before the session that the run took over at its start
    (carried over from the previous run, or adopted), with what the run knows of each, by
    Alpaca's order id; `reach_back` (RFC 3339) is no later than the earliest one's
    submission. The backfill covers them (and the legs of a parent among them), but no
    other order submitted before the session (`session_start_ns`, exact; the query's
    `session_start` is in whole seconds): those belong to no one here.
    """

    def __init__(self, credentials: AlpacaCredentials, on_update: OnUpdate,
                 orders_since: OrdersSince, *, url: str = PAPER_TRADING_STREAM_URL,
                 backoff: Backoff | None = None, max_reconnects: int | None = None,
                 handshake_timeout: float = 10.0, session_start: str = "",
                 clock: Callable[[], int] = time.time_ns,
                 taken_over: Mapping[str, SeenOrder] | None = None,
                 reach_back: str = "", session_start_ns: int = 0) -> None:
        super().__init__(url, credentials, backoff, max_reconnects, handshake_timeout)
        self._on_update = on_update
        self._orders_since = orders_since
        self._clock = clock
        self.seen: dict[str, SeenOrder] = dict(taken_over or {})
        self._taken_over = frozenset(taken_over or ())
        # Alpaca's `after` filters on submission time, so the backfill must reach back to
        # the session's start: an order submitted earlier may have filled in the gap.
        self.session_start = session_start
        self._session_start_ns = session_start_ns or rfc3339_ns(session_start)
        self._reach_back = reach_back if taken_over else ""

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
        for parent in await self._orders_since(self._reach_back or self.session_start):
            # A parent first: its updates carry its legs, which tells the execution stage
            # whose legs they are before any of them is reported filled.
            for order in self._followed(parent):
                for update in missed_updates(order, self.seen.get(order.id)):
                    await self._deliver(update, backfilled=True)

    def _followed(self, parent: wire.Order) -> tuple[wire.Order, ...]:
        """The orders of `parent`'s family the backfill is about: all of this session's;
        of an earlier one, those taken over (a parent taken over brings its legs)."""
        family = (parent, *(parent.legs or ()))
        submitted = rfc3339_ns(parent.submitted_at or parent.created_at)
        if not submitted or submitted >= self._session_start_ns or parent.id in self._taken_over:
            return family
        return tuple(leg for leg in family[1:] if leg.id in self._taken_over)

    async def _deliver(self, update: wire.TradeUpdate, backfilled: bool) -> None:
        seen = self.seen.get(update.order.id)
        if already_seen(update, seen):
            return
        self.seen[update.order.id] = seen_after(update, seen)
        await self._on_update(update, self._clock(), backfilled)
