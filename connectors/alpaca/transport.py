"""How one request to Alpaca is made: through the token bucket, with errors mapped to
ours, and (for reads) retried with backoff. Shared by the trading and market-data clients.

Also the HTTP timeout: requests' Session waits forever by default and alpaca-py passes no
timeout, so `bound_session` mounts adapters that add one to every request.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import requests
from requests.adapters import HTTPAdapter

from connectors.alpaca import wire
from connectors.alpaca.errors import BrokerRefused, BrokerUnavailable, RateLimited
from connectors.alpaca.ratelimit import Backoff, TokenBucket
from connectors.alpaca.sdk import APIError

DEFAULT_HTTP_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 5
T = TypeVar("T")


class _TimeoutAdapter(HTTPAdapter):
    """An HTTPAdapter with a default timeout in seconds."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def bound_session(rest_client, timeout: float) -> None:
    """Give an alpaca-py REST client's session a timeout and switch off its retry loop.

    Its retry loop re-sends any request after a 429/504 (a POST of an order included) after
    a fixed 3 s; `RequestRunner` retries instead, with backoff and, for orders, a lookup
    first. These are alpaca-py private attributes (0.44), hence one place that sets them.
    """
    rest_client._retry = 0
    adapter = _TimeoutAdapter(timeout)
    rest_client._session.mount("https://", adapter)
    rest_client._session.mount("http://", adapter)


class RequestRunner:
    """Runs requests under the rate limit; `read` retries idempotent ones."""

    def __init__(self, base_url: str, bucket: TokenBucket | None = None,
                 backoff: Backoff | None = None, attempts: int = DEFAULT_ATTEMPTS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url
        self.bucket = bucket or TokenBucket()
        self.backoff = backoff or Backoff()
        self.attempts = attempts
        self.sleep = sleep

    def read(self, request: Callable[[], Any], into: type[T], *,
             priority: bool = False) -> T:
        """A GET, decoded into `into`; retried on 429, 5xx, timeouts. 4xx raises BrokerRefused.

        `priority`: part of an order submission (the lookup), may use the order reserve.
        """
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                return msgspec.convert(self.call(request, priority=priority), into,
                                       strict=False)
            except RateLimited as limited:
                last = limited
                self.sleep(self.backoff.delay(attempt, limited.reset_after))
            except BrokerUnavailable as unknown:
                last = unknown
                self.sleep(self.backoff.delay(attempt))
        raise BrokerUnavailable(f"Alpaca did not answer after {self.attempts} attempts: {last}")

    def call(self, request: Callable[[], Any], *, priority: bool = False) -> Any:
        """One rate-limited request, with alpaca-py's and requests' errors mapped to ours;
        `priority` requests (orders) may take the bucket's order reserve."""
        self.bucket.acquire(priority)
        try:
            return request()
        except APIError as error:
            raise _mapped(error, self.bucket) from None
        except (requests.Timeout, requests.ConnectionError) as error:
            raise BrokerUnavailable(f"{type(error).__name__} talking to {self.base_url}") from None


def _mapped(error: APIError, bucket: TokenBucket) -> Exception:
    status = error.status_code or 0
    if status == 429:
        bucket.drain()   # the broker counted more than we did: wait for a fresh token
        return RateLimited(_reset_after(error.response))
    if status >= 500 or status == 0:
        return BrokerUnavailable(f"Alpaca answered HTTP {status}")
    try:
        body = wire.error_decoder.decode(str(error).encode())
        code, message = body.code, body.message
    except msgspec.DecodeError:
        code, message = 0, str(error)[:200]
    return BrokerRefused(status, code, message)


def _reset_after(response: requests.Response | None) -> float | None:
    """Seconds until the rate-limit window resets, from X-RateLimit-Reset (epoch seconds)."""
    if response is None:
        return None
    reset = response.headers.get("X-RateLimit-Reset")
    try:
        return max(0.0, float(reset) - time.time()) if reset else None
    except ValueError:
        return None
