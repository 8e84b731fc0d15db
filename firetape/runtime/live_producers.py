"""The live loop's producers that are not streams: order submissions, the control inbox
and the balance reading. Each runs as a task of its own and hands its result to the loop
as an input event through `put` (never publishing itself: the loop is the bus's only
caller), stamped by the loop's InputClock when it is put."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from agents.context import Context
from connectors.alpaca import reports
from connectors.alpaca.client import SubmitOutcome
from connectors.alpaca.errors import AlpacaError, BrokerUnavailable
from connectors.alpaca.executor import AsyncAlpaca
from connectors.alpaca.inbox import read_commands
from firetape.runtime.live_inputs import InputClock
from schemas.header import Event
from schemas.orders import PlaceOrder

logger = structlog.get_logger("firetape.live")

Put = Callable[[Event], None]
SUBMIT_ATTEMPTS = 3         # awaited submits; each one is idempotent (lookup first)
INBOX_POLL_SECONDS = 0.2


async def submit_order(broker: AsyncAlpaca, order: PlaceOrder, put: Put,
                       clock: InputClock, backoff: float = 0.2) -> None:
    """Send one order; its outcome comes back as an input. Every attempt is idempotent
    (AlpacaTrading looks the client order id up first), so retrying is safe."""
    ctx = Context(order.run_id, reports.PRODUCER, order.account)
    reason = ""
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            outcome = await broker.submit(order)
        except BrokerUnavailable as unknown:   # timeouts included: outcome unknown
            reason = str(unknown)
            await asyncio.sleep(backoff * 2 ** attempt)
            continue
        except AlpacaError as error:
            # Not a rejection of the order itself (e.g. the lookup was refused), but
            # retrying cannot help either: recorded as a refusal with the reason.
            outcome = SubmitOutcome(None, rejection=str(error), attempts=attempt)
        put(reports.submit_report(order, outcome, ctx, clock.stamp()))
        return
    logger.warning("live.submit_unconfirmed", client_order_id=order.client_order_id,
                   reason=reason)
    put(reports.submit_unknown(order, reason, SUBMIT_ATTEMPTS, ctx, clock.stamp()))


async def poll_inbox(run_dir: Path, put: Put, clock: InputClock) -> None:
    """Operator commands posted to the run's inbox, as control inputs (until cancelled)."""
    offset = 0
    while True:
        commands, offset = read_commands(run_dir, offset)
        for command in commands:
            # Stamped when taken in: the operator's time stays in ts_event.
            put(msgspec.structs.replace(command, ts_init=clock.stamp()))
        await asyncio.sleep(INBOX_POLL_SECONDS)


async def refresh_balance(broker: AsyncAlpaca, ctx: Context, account: str, every: float,
                          put: Put, clock: InputClock) -> None:
    """A BrokerBalanceRead every `every` seconds (until cancelled)."""
    while True:
        await asyncio.sleep(every)
        try:
            found = await broker.account()
        except AlpacaError as error:
            # No reading: the last one ages and, past its maximum age, orders are denied
            # (fail-closed) unless balance_check = "warn".
            logger.warning("live.balance_unreadable", error=str(error))
            continue
        put(reports.balance_read(found, ctx, account, clock.stamp()))
