"""What Alpaca said, as the broker-report input events the live loop records.

Pure: the loop passes in the time each answer was received (`now_ns`, already made
strictly increasing by the loop), so the same answers give the same events. Ids are
derived from the run id, what the report is about and its receive time.
"""
from __future__ import annotations

import msgspec

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.account import ConfirmedAccount
from connectors.alpaca.client import SubmitOutcome
from connectors.alpaca.parse import rfc3339_ns
from schemas.broker import (
    BrokerAccountDetected, BrokerBalanceRead, BrokerOrderRefused, BrokerOrderSubmitted,
    BrokerTradeUpdate, WorkingOrder,
)
from schemas.orders import PlaceOrder

PRODUCER = "broker"
BROKER = "alpaca"


def _header(ctx: Context, now_ns: int, *what: object, ts_event: int | None = None,
            correlation_id: str = "") -> dict:
    event_id = ctx.derive_id(PRODUCER, *what, now_ns)
    return {"event_id": event_id, "ts_event": now_ns if ts_event is None else ts_event,
            "ts_init": now_ns, "correlation_id": correlation_id or event_id,
            "causation_id": "", "producer": PRODUCER, "run_id": ctx.run_id}


def account_detected(confirmed: ConfirmedAccount, ctx: Context, account: str,
                     now_ns: int) -> BrokerAccountDetected:
    """The account Alpaca confirmed at start, with the balance it reported."""
    found = confirmed.account
    return BrokerAccountDetected(
        **_header(ctx, now_ns, "account"), account=account, broker=BROKER,
        account_type=confirmed.account_type, account_number=found.account_number,
        endpoint=confirmed.endpoint, status=found.status, equity=found.equity,
        buying_power=found.buying_power)


def balance_read(found: wire.Account, ctx: Context, account: str,
                 now_ns: int) -> BrokerBalanceRead:
    """A periodic balance reading."""
    return BrokerBalanceRead(**_header(ctx, now_ns, "balance"), account=account,
                             equity=found.equity, buying_power=found.buying_power)


def submit_report(order: PlaceOrder, outcome: SubmitOutcome, ctx: Context,
                  now_ns: int) -> BrokerOrderSubmitted | BrokerOrderRefused:
    """The outcome of an idempotent submit, as the report the execution stage reads."""
    header = _header(ctx, now_ns, "submit", order.client_order_id,
                     correlation_id=order.correlation_id)
    if outcome.order is None:
        return BrokerOrderRefused(**header, account=order.account,
                                  client_order_id=order.client_order_id, symbol=order.symbol,
                                  reason=outcome.rejection, attempts=outcome.attempts)
    found = outcome.order
    return BrokerOrderSubmitted(**header, account=order.account,
                                client_order_id=order.client_order_id, symbol=order.symbol,
                                broker_order_id=found.id, status=found.status,
                                existing=outcome.existing, attempts=outcome.attempts,
                                submitted_at_ns=rfc3339_ns(found.submitted_at))


def submit_unknown(order: PlaceOrder, reason: str, attempts: int, ctx: Context,
                   now_ns: int) -> BrokerOrderRefused:
    """A submission whose outcome stayed unknown after every attempt.

    Recorded as a refusal so the pipeline stops counting the order as in flight; if
    Alpaca did place it, the trade-update backfill reports it, and the next start's
    reconciliation shows it as an order unknown to us.
    """
    return BrokerOrderRefused(
        **_header(ctx, now_ns, "submit", order.client_order_id,
                  correlation_id=order.correlation_id),
        account=order.account, client_order_id=order.client_order_id, symbol=order.symbol,
        reason=f"outcome unknown: {reason}", attempts=attempts)


def never_sent(order: WorkingOrder, ctx: Context, now_ns: int) -> BrokerOrderRefused:
    """An order the previous run approved but Alpaca never received (it stopped before
    sending it, or the submission failed unseen): the next start finds no such client
    order id at Alpaca and closes it, rather than send it late or count it forever."""
    return BrokerOrderRefused(
        **_header(ctx, now_ns, "never-sent", order.client_order_id,
                  correlation_id=order.correlation_id),
        account=ctx.account, client_order_id=order.client_order_id, symbol=order.symbol,
        reason="never reached Alpaca (the previous run stopped before it was sent)",
        attempts=0)


_encode = msgspec.json.Encoder().encode


def trade_update_report(update: wire.TradeUpdate, ctx: Context, account: str,
                        received_ns: int, backfilled: bool) -> BrokerTradeUpdate:
    """A trade update kept as the JSON of the wire Struct, Alpaca's timestamp as ts_event."""
    order = update.order
    return BrokerTradeUpdate(
        **_header(ctx, received_ns, "update", order.id, update.event,
                  ts_event=rfc3339_ns(update.timestamp) or received_ns,
                  correlation_id=order.client_order_id),
        account=account, client_order_id=order.client_order_id,
        update=_encode(update).decode(), received_ns=received_ns, backfilled=backfilled)
