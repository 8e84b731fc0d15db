"""The live runtime: Alpaca's streams in, orders out, broker reports back, one asyncio loop.

    firetape run --feed alpaca --broker alpaca-paper --strategy sma_cross --symbols AAPL,MSFT

Start-up, before any input: the live guard (`confirm_account`), BrokerAccountDetected,
the final state of the previous live run of the account carried over (StateCarriedOver,
see live_carryover), then reconciliation of Alpaca's positions and open orders against
that state: HALTED until acknowledged or, when the config adopts, the broker's positions,
cash and open orders taken as the run's starting state.

Then one loop owns the EmbeddedBus (which stays synchronous and depth-first) and is its
only caller. Producers put input events on one queue: the bar stream, the trade-update
stream, the control inbox, a periodic balance reading, and the order submissions, which
run in AsyncAlpaca's bounded pools as tasks of their own, so the loop never waits for
the broker. Every input is stamped by an InputClock (strictly increasing ts_init) when it
is queued, so the queue order is recorded in the log and a replay restores it.

The execution stage (AlpacaExecution) is pure: the loop drains its outbox after each
input and sends what is there. After a market-data reconnect the bar stream backfills
the bars missed from the historical bars endpoint, and never delivers a bar twice (nor one
the run this one continues took).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from agents.context import Context
from connectors.alpaca import reports
from connectors.alpaca.account import TradingRequest, confirm_account
from connectors.alpaca.catchup import seen_orders, updates_since
from connectors.alpaca.credentials import AlpacaCredentials
from connectors.alpaca.execution import AlpacaExecution
from connectors.alpaca.executor import AsyncAlpaca
from connectors.alpaca.parse import SeenOrder, stream_bar_event
from connectors.alpaca.stream import BarStream, TradeUpdateStream
from connectors.alpaca.timeframes import parse_timeframe
from firetape.config import FiretapeConfig
from firetape.eventlog import EventLog
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.live_carryover import final_state, run_to_continue
from firetape.runtime.live_inputs import InputClock
from firetape.runtime.live_lock import account_lock
from firetape.runtime.live_producers import poll_inbox, refresh_balance, submit_order
from firetape.runtime.live_setup import (
    TIMEFRAME, LiveConnections, LiveRequest, live_meta, live_run_id,
)
from firetape.runtime.live_start import start_state
from firetape.runtime.pipeline import build_stages
from firetape.runtime.session import LOG_DIR, new_run_dir, write_meta
from schemas.broker import WorkingOrder
from schemas.header import Event

logger = structlog.get_logger("firetape.live")

DRAIN_SECONDS = 5.0         # at shutdown: how long in-flight submissions may still answer


@dataclass
class LiveResult:
    run_id: str
    run_dir: Path
    bars: int
    inputs: int
    counts: dict[str, int]
    digests: dict[str, str]
    dead_letters: int
    submissions: int
    meta: dict = field(default_factory=dict)


class LiveSession:
    """One live run: start-up checks, the input loop, shutdown. Use `await run()` once.

    `stop` ends the loop (the CLI sets it on SIGINT/SIGTERM); `until(bus)`, checked after
    each input, ends it too (tests). `clock` is the wall clock inputs are stamped with.
    """

    def __init__(self, config: FiretapeConfig, request: LiveRequest,
                 credentials: AlpacaCredentials, links: LiveConnections, runs_root: Path, *,
                 stop: asyncio.Event | None = None,
                 until: Callable[[EmbeddedBus], bool] | None = None,
                 clock: Callable[[], int] = time.time_ns,
                 balance_refresh_seconds: float | None = None) -> None:
        self.config = config
        self.request = request
        self.account = config.run.account
        self._credentials = credentials
        self._links = links
        self._runs_root = Path(runs_root)
        self.stop = stop or asyncio.Event()
        self._until = until
        self._clock = InputClock(clock)
        self._wall = clock
        self._refresh = balance_refresh_seconds or max(
            1.0, min(60.0, config.alpaca.balance_max_age_seconds / 2))
        self._timeframe = parse_timeframe(TIMEFRAME)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._bars_until: dict[str, int] = {}   # symbol -> last bar of the continued run
        self._bar_stream: BarStream | None = None
        self._submissions: set[asyncio.Task] = set()
        # What is known of the orders taken over at the start (carried or adopted), by
        # Alpaca's order id, and those still working: the trade stream follows them.
        self._taken_over: dict[str, SeenOrder] = {}
        self._reach_back: tuple[WorkingOrder, ...] = ()
        self.submitted = 0
        self.bars = 0
        self.inputs = 0

    # -- start-up ----------------------------------------------------------------------

    async def run(self) -> LiveResult:
        """Confirm, reconcile, loop until stopped, shut down; the run's result."""
        broker = AsyncAlpaca(self._links.trading, history=self._links.history,
                             timeout=self.config.alpaca.call_timeout_seconds)
        try:
            return await self._run(broker)
        finally:
            broker.close()

    async def _run(self, broker: AsyncAlpaca) -> LiveResult:
        trading = self._links.trading
        request = TradingRequest(self.request.broker, self.request.live_flag,
                                 self.config.alpaca.account_type)
        # Blocking HTTP, so in a thread; nothing else runs yet, but the rule holds.
        confirmed = await asyncio.to_thread(confirm_account, request, self._credentials,
                                            trading.account, trading.base_url)
        account_number = confirmed.account.account_number
        # Held until the session ends: from choosing the run to continue to the last order.
        with account_lock(self._runs_root, account_number,
                          f"started {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"):
            return await self._session(broker, confirmed)

    async def _session(self, broker: AsyncAlpaca, confirmed) -> LiveResult:
        run_id = live_run_id(self.config, self.request, confirmed.account.account_number,
                             confirmed.account_type)
        previous = run_to_continue(self._runs_root, self.request.carry_from,
                                   self.request.fresh, confirmed.account.account_number,
                                   confirmed.account_type)
        # Read back before the new run exists, so a failure leaves no empty run behind.
        carried = None if previous is None else await asyncio.to_thread(
            final_state, previous, self.config)
        if carried is not None:
            self._bars_until = dict(carried.last_bars)
        run_dir = new_run_dir(self._runs_root, run_id)
        meta = live_meta(self.config, self.request, run_id, confirmed, previous)
        write_meta(run_dir, meta)
        logger.info("live.started", run_id=run_id, run_dir=str(run_dir),
                    account_type=confirmed.account_type, symbols=list(self.request.symbols))
        ctx = Context(run_id, reports.PRODUCER, self.account)
        outbox: list = []
        execution = AlpacaExecution(Context(run_id, "execution", self.account),
                                    self.config.alpaca, outbox)
        with EventLog(run_dir / LOG_DIR, mode="a") as log:
            bus = EmbeddedBus(build_stages(self.config, run_id, execution), log, run_id)
            self._take(bus, outbox, broker, reports.account_detected(
                confirmed, ctx, self.account, self._clock.stamp()))
            caught_up = await start_state(
                lambda event: self._take(bus, outbox, broker, event), self._clock.stamp,
                broker, bus.stages, carried, self.config, run_id, self._wall(),
                confirmed.account.cash, self.request.symbols)
            # The orders taken over (carried or adopted) are followed by the trade
            # stream from what is known of them, so its backfill covers them too.
            taken = execution.working_orders()
            self._taken_over = {**seen_orders(taken), **caught_up}
            self._reach_back = taken
            await self._loop(bus, outbox, broker, ctx, run_dir)
            bus.finish()
            log.flush()
            digests = log.digests()
        backfilled = self._bar_stream.backfilled if self._bar_stream is not None else 0
        meta.update(completed=True, counts=bus.counts(), digests=digests,
                    dead_letters=bus.dead_letters, bars_processed=self.bars,
                    bars_backfilled=backfilled,
                    inputs=self.inputs, submissions=self.submitted)
        write_meta(run_dir, meta)
        logger.info("live.finished", run_id=run_id, bars=self.bars, inputs=self.inputs,
                    submissions=self.submitted, dead_letters=bus.dead_letters)
        return LiveResult(run_id, run_dir, self.bars, self.inputs, bus.counts(), digests,
                          bus.dead_letters, self.submitted, meta)

    # -- the loop ----------------------------------------------------------------------

    async def _loop(self, bus, outbox, broker: AsyncAlpaca, ctx: Context,
                    run_dir: Path) -> None:
        bars = BarStream(self._credentials, list(self.request.symbols),
                         self._on_bar_factory(ctx.run_id), url=self._links.data_stream_url,
                         backoff=self._links.backoff, bars_between=self._bars_between(broker),
                         timeframe=self._timeframe, clock=self._wall,
                         taken_until=self._bars_until)
        self._bar_stream = bars
        # The trade-update backfill reaches back to this session's start, and to the
        # submission of the orders taken over at the start.
        now = self._wall()
        session_start = datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        updates = TradeUpdateStream(self._credentials, self._on_update_factory(ctx),
                                    broker.orders_since, url=self._links.trading_stream_url,
                                    backoff=self._links.backoff, session_start=session_start,
                                    taken_over=self._taken_over,
                                    reach_back=updates_since(self._reach_back, now),
                                    session_start_ns=now)
        tasks = [asyncio.create_task(bars.run(), name="bars"),
                 asyncio.create_task(updates.run(), name="trade-updates"),
                 asyncio.create_task(poll_inbox(run_dir, self._put, self._clock),
                                     name="inbox"),
                 asyncio.create_task(refresh_balance(broker, ctx, self.account, self._refresh,
                                                     self._put, self._clock),
                                     name="balance")]
        try:
            while not self.stop.is_set():
                failed = next((t for t in tasks if t.done() and t.exception()), None)
                if failed is not None:
                    raise failed.exception()   # e.g. the stream refused the keys
                try:
                    event = await asyncio.wait_for(self._queue.get(), 0.1)
                except TimeoutError:
                    continue
                self._take(bus, outbox, broker, event)
                if self._until is not None and self._until(bus):
                    self.stop.set()
        finally:
            self.stop.set()
            await bars.stop()
            await updates.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._drain(bus, outbox, broker)

    async def _drain(self, bus, outbox, broker) -> None:
        """Let in-flight submissions answer (bounded), and take what is still queued, so
        every order sent has its outcome in the log when the broker answered in time."""
        if self._submissions:
            await asyncio.wait(self._submissions, timeout=DRAIN_SECONDS)
        while not self._queue.empty():
            self._take(bus, outbox, broker, self._queue.get_nowait())
        # Stopped: orders not yet sent are not sent; the next start finds them missing at
        # Alpaca and closes them (live_start).
        outbox.clear()

    def _take(self, bus: EmbeddedBus, outbox: list, broker: AsyncAlpaca, event: Event) -> None:
        """Publish one input, then send what the execution stage put in its outbox."""
        bus.publish(event)
        self.inputs += 1
        if outbox and not self.stop.is_set():
            for order in outbox:
                self.submitted += 1
                task = asyncio.create_task(submit_order(broker, order, self._put, self._clock))
                self._submissions.add(task)
                task.add_done_callback(self._submissions.discard)
            outbox.clear()

    def _put(self, event: Event) -> None:
        self._queue.put_nowait(event)

    # -- streams -----------------------------------------------------------------------

    def _on_bar_factory(self, run_id: str):
        async def on_bar(bar, received_ns: int) -> None:
            event = stream_bar_event(bar, run_id, self._clock.stamp(received_ns),
                                     self._timeframe)
            self.bars += 1
            self._put(event)
        return on_bar

    def _bars_between(self, broker: AsyncAlpaca):
        """The bar stream's backfill source, or None without a market-data client."""
        if self._links.history is None:
            return None
        feed = self.config.alpaca.data_feed

        async def bars_between(symbols: list[str], start_ns: int, end_ns: int):
            return await broker.bars_between(symbols, self._timeframe, start_ns, end_ns, feed)
        return bars_between

    def _on_update_factory(self, ctx: Context):
        async def on_update(update, received_ns: int, backfilled: bool) -> None:
            self._put(reports.trade_update_report(update, ctx, self.account,
                                                  self._clock.stamp(received_ns), backfilled))
        return on_update
