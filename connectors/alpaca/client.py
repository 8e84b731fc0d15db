"""The I/O with Alpaca's trading API: rate-limited, bounded in time, retried, idempotent.

alpaca-py's TradingClient does the HTTP (auth headers, URLs, JSON), with `raw_data=True`
so its answers are decoded into our wire Structs rather than its pydantic models. Two
things of alpaca-py are switched off on purpose:

- its own retry loop: it re-POSTs /v2/orders after a 429 or 504 with no idempotency check,
  and a 504 may well have placed the order. Here every resubmission is preceded by a
  lookup by client order id, so a retry (or a restart) never creates a duplicate;
- its unbounded waits: requests' Session has no timeout by default, so
  `transport.bound_session` sets one on the session's adapters (and the async wrapper in
  `executor.py` bounds the caller's whole wait, retries included, on top of that).

Everything here is synchronous and blocking, by design: it runs in executor threads.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from connectors.alpaca import wire
from connectors.alpaca.credentials import AlpacaCredentials
from connectors.alpaca.errors import BrokerRefused, BrokerUnavailable, RateLimited
from connectors.alpaca.parse import order_request
from connectors.alpaca.ratelimit import Backoff, TokenBucket
from connectors.alpaca.sdk import TradingClient
from connectors.alpaca.transport import (
    DEFAULT_ATTEMPTS, DEFAULT_HTTP_TIMEOUT, RequestRunner, bound_session,
)
from schemas.orders import PlaceOrder

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
# Alpaca's answer (HTTP 422) to a second order with a client order id it already has.
_DUPLICATE = "client_order_id must be unique"
T = TypeVar("T")


@dataclass(frozen=True)
class SubmitOutcome:
    """The result of an idempotent submit.

    Exactly one of `order` (Alpaca has the order) and `rejection` (Alpaca's reason) is set.
    `existing` is True when the order was found by its client order id rather than created
    by this call: a retry or a restart that would otherwise have duplicated it.
    """

    order: wire.Order | None
    rejection: str = ""
    existing: bool = False
    attempts: int = 1


class AlpacaTrading:
    """Synchronous trading calls. Thread-safe as far as requests' Session is."""

    def __init__(self, credentials: AlpacaCredentials, *, paper: bool = True,
                 base_url: str | None = None, bucket: TokenBucket | None = None,
                 backoff: Backoff | None = None, http_timeout: float = DEFAULT_HTTP_TIMEOUT,
                 attempts: int = DEFAULT_ATTEMPTS, lookup_first: bool = True,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url or (PAPER_URL if paper else LIVE_URL)
        self._api = TradingClient(api_key=credentials.key_id.reveal(),
                                  secret_key=credentials.secret_key.reveal(), paper=paper,
                                  raw_data=True, url_override=self.base_url)
        bound_session(self._api, http_timeout)
        self._runner = RequestRunner(self.base_url, bucket, backoff, attempts, sleep)
        self._backoff = self._runner.backoff
        self._attempts = attempts
        # A restart may resubmit an order sent before the crash; looking it up first costs
        # one request per order and makes even the first attempt safe.
        self._lookup_first = lookup_first
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"AlpacaTrading({self.base_url})"

    # ---- reads (idempotent, retried) ----------------------------------------------------

    def account(self) -> wire.Account:
        """GET /v2/account."""
        return self._read(lambda: self._api.get("/account"), wire.Account)

    def positions(self) -> list[wire.Position]:
        """GET /v2/positions."""
        return self._read(lambda: self._api.get("/positions"), list[wire.Position])

    def open_orders(self) -> list[wire.Order]:
        """GET /v2/orders?status=open (up to Alpaca's maximum of 500)."""
        return self._read(lambda: self._api.get("/orders", {"status": "open", "limit": 500}),
                          list[wire.Order])

    def orders_since(self, after: str) -> list[wire.Order]:
        """Every order (any status) updated after `after` (RFC 3339), oldest first, with
        bracket/OTO legs nested under their parent: the source of the backfill after a
        trade-stream disconnect."""
        params = {"status": "all", "after": after, "direction": "asc", "limit": 500,
                  "nested": "true"}
        return self._read(lambda: self._api.get("/orders", params), list[wire.Order])

    def order_by_client_id(self, client_order_id: str, *,
                           for_submit: bool = False) -> wire.Order | None:
        """GET /v2/orders:by_client_order_id; None when Alpaca has no such order (404).
        `for_submit`: the lookup of a submission, under the rate limit's order reserve."""
        try:
            return self._runner.read(lambda: self._api.get(
                "/orders:by_client_order_id", {"client_order_id": client_order_id}),
                wire.Order, priority=for_submit)
        except BrokerRefused as refused:
            if refused.status == 404:
                return None
            raise

    # ---- the one write ---------------------------------------------------------------

    def submit(self, order: PlaceOrder) -> SubmitOutcome:
        """Place `order` exactly once, however often this is called.

        Before every resubmission (and, by default, before the first) the order is looked
        up by its client order id. A 429 waits (backoff, or Alpaca's reset time) and tries
        again; a 5xx, timeout or broken connection leaves the outcome unknown, so it looks
        up and retries. A 4xx is Alpaca's refusal: returned as a rejection with its reason.
        Raises BrokerUnavailable when every attempt failed.
        """
        body = order_request(order)
        last: Exception | None = None
        for attempt in range(self._attempts):
            if attempt or self._lookup_first:
                existing = self.order_by_client_id(order.client_order_id, for_submit=True)
                if existing is not None:
                    return SubmitOutcome(existing, existing=True, attempts=attempt + 1)
            try:
                raw = self._runner.call(lambda: self._api.post("/orders", body),
                                        priority=True)
                return SubmitOutcome(msgspec.convert(raw, wire.Order, strict=False),
                                     attempts=attempt + 1)
            except RateLimited as limited:
                last = limited
                self._sleep(self._backoff.delay(attempt, limited.reset_after))
            except BrokerUnavailable as unknown:
                last = unknown
                self._sleep(self._backoff.delay(attempt))
            except BrokerRefused as refused:
                if _DUPLICATE in refused.message:
                    existing = self.order_by_client_id(order.client_order_id,
                                                       for_submit=True)
                    if existing is not None:
                        return SubmitOutcome(existing, existing=True, attempts=attempt + 1)
                return SubmitOutcome(None, rejection=refused.message or str(refused),
                                     attempts=attempt + 1)
        raise BrokerUnavailable(f"order {order.client_order_id} not confirmed after "
                                f"{self._attempts} attempts: {last}")

    # ---- plumbing ----------------------------------------------------------------------

    def _read(self, request: Callable[[], Any], into: type[T]) -> T:
        return self._runner.read(request, into)
