"""The start of a live run, before any market data: where it starts from, and how that
compares with Alpaca.

1. The previous live run's final state is carried over (StateCarriedOver), unless the
   run starts fresh or the config adopts the broker's state.
2. The orders it left working may have filled or ended while no run listened: their
   missed trade updates are read from the orders endpoint and taken as inputs, so those
   fills are booked to the strategy that sent the order (connectors.alpaca.catchup).
3. Reconciliation compares Alpaca's positions and open orders, read after the catch-up
   and checked against one more read of the orders endpoint (a fill landing between the
   reads is taken, and everything read again), with the state the run is now in: differences, the summary (which halts when its resolution is "halted") and,
   when the config adopts, BrokerStateAdopted (positions, cash and open orders).

Every event goes through `take`, the live loop's way of publishing an input, with a
stamp of its own (`stamp`): the replay order is the stamp order.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import msgspec
import structlog

from agents.context import Context
from connectors.alpaca import reports
from connectors.alpaca.catchup import missed_while_stopped, updates_since
from connectors.alpaca.config import ADOPT
from connectors.alpaca.executor import AsyncAlpaca
from connectors.alpaca.parse import SeenOrder
from connectors.alpaca.reconcile import LocalState, local_state_of_carried, reconcile
from firetape.config import FiretapeConfig
from firetape.runtime.live_carryover import CarriedState, carried_over, open_lots
from schemas.broker import BrokerStateAdopted, ReconciliationDifference
from schemas.header import Event

logger = structlog.get_logger("firetape.live")
# Reads of positions, open orders and the orders endpoint before the start gives up on a
# moment when no order of the run fills.
SETTLE_ROUNDS = 3


async def start_state(take: Callable[[Event], None], stamp: Callable[[], int],
                      broker: AsyncAlpaca, stages: Sequence, carried: CarriedState | None,
                      config: FiretapeConfig, run_id: str, now_ns: int,
                      cash: Decimal | None, symbols: Sequence[str]) -> dict[str, SeenOrder]:
    """Carry over, catch up, reconcile (see the module). Returns what is known of the
    orders the run took over, by Alpaca's order id: the trade stream's starting point."""
    account = config.run.account

    def restamped(event: Event) -> None:
        take(msgspec.structs.replace(event, ts_init=stamp()))

    positions = await broker.positions()
    open_orders = await broker.open_orders()
    # Adopting needs the broker's cash (reconcile halts without it).
    adopting = config.alpaca.reconciliation == ADOPT and cash is not None
    caught_up: dict[str, SeenOrder] = {}
    if carried is None:
        local = LocalState({}, {})
    elif adopting:
        # Alpaca's positions, cash and open orders are taken below, attributed to the
        # sleeves and orders of the carried state where they agree with it.
        local = local_state_of_carried(carried.lots, carried.orders)
    else:
        restamped(carried_over(carried, Context(run_id, "carryover", account), account,
                               now_ns, adopt=False, keep_directions=lambda d: True))
        if carried.orders:
            caught_up = await _catch_up(take, stamp, broker, carried, run_id, account, now_ns)
            positions, open_orders, caught_up = await _settled(
                take, stamp, broker, carried, caught_up, run_id, account, now_ns)
        stage = {s.name: s for s in stages}
        local = local_state_of_carried(open_lots(stage["portfolio"]),
                                       stage["execution"].working_orders())
    events = reconcile(positions, open_orders, local,
                       Context(run_id, "reconciliation", account), account,
                       config.alpaca.reconciliation, now_ns, cash)
    if carried is not None and adopting:
        # A position that differed is adopted whole into the unattributed sleeve: the
        # directions of its strategies' sleeves no longer describe it.
        moved = {e.symbol for e in events
                 if isinstance(e, ReconciliationDifference) and e.kind == "position"}
        events.insert(0, carried_over(carried, Context(run_id, "carryover", account),
                                      account, now_ns, adopt=True,
                                      keep_directions=lambda d: d.symbol not in moved))
    held = {p.symbol for e in events if isinstance(e, BrokerStateAdopted) for p in e.positions}
    if held - set(symbols):
        # No bars for them: no marks beyond Alpaca's price and no return history, so
        # risk's VaR checks deny every order (fail-closed) until they are streamed.
        logger.warning("live.adopted_not_streamed", symbols=sorted(held - set(symbols)),
                       hint="add them to --symbols")
    for event in events:
        restamped(event)
    return caught_up


async def _settled(take, stamp, broker: AsyncAlpaca, carried: CarriedState,
                   seen: dict[str, SeenOrder], run_id: str, account: str, now_ns: int):
    """Alpaca's positions and open orders, read after the catch-up and checked against the
    orders endpoint read once more. An order that filled between the reads (the market is
    open while the run starts) is taken as its update and everything is read again, so
    reconciliation compares the two sides at one moment instead of halting on a fill in
    flight; after SETTLE_ROUNDS rounds what differs stands (and halts: the safe side)."""
    ctx = Context(run_id, reports.PRODUCER, account)
    since = updates_since(carried.orders, now_ns)
    for _ in range(SETTLE_ROUNDS):
        positions = await broker.positions()
        open_orders = await broker.open_orders()
        updates, seen = missed_while_stopped(await broker.orders_since(since), carried.orders,
                                             seen)
        for update in updates:
            take(reports.trade_update_report(update, ctx, account, stamp(), backfilled=True))
        if not updates:
            break
        logger.info("live.fill_during_start", updates=len(updates))
    return positions, open_orders, seen


async def _catch_up(take, stamp, broker: AsyncAlpaca, carried: CarriedState, run_id: str,
                    account: str, now_ns: int) -> dict[str, SeenOrder]:
    """The trade updates the carried orders missed between the two runs, as inputs; and
    the close of each that never reached Alpaca."""
    ctx = Context(run_id, reports.PRODUCER, account)
    history = list(await broker.orders_since(updates_since(carried.orders, now_ns)))
    listed = {order.client_order_id for order in history}
    never_sent = []
    for order in carried.orders:
        # No answer from Alpaca was recorded: the previous run may have stopped before
        # sending it, or the answer was lost. Its client order id says which.
        if order.broker_order_id or order.leg_of or order.client_order_id in listed:
            continue
        found = await broker.order_by_client_id(order.client_order_id)
        if found is None:
            never_sent.append(order)
        else:
            history.append(found)
    updates, seen = missed_while_stopped(history, carried.orders)
    for update in updates:
        take(reports.trade_update_report(update, ctx, account, stamp(), backfilled=True))
    for order in never_sent:
        take(reports.never_sent(order, ctx, stamp()))
    if updates or never_sent:
        logger.info("live.caught_up", updates=len(updates), never_sent=len(never_sent),
                    from_run=carried.run_dir.name)
    return seen
