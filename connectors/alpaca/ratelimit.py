"""A token bucket under Alpaca's per-account request limit, and the backoff after a 429.

Alpaca allows 200 requests per minute per account (all endpoints together). A bucket of
`burst` tokens refilled at (limit - burst) per minute admits at most `limit` requests in
any 60-second window, so bursts stay possible without ever crossing the limit.
The bucket is shared by every thread of the client, so it is locked.

Orders never wait behind reads: the last `reserve` tokens are for orders only
(`acquire(priority=True)`: the lookup by client order id and the POST of a submission).
A read waits until the bucket holds more than the reserve, so however many reads are
queued (balance refreshes, backfills), an order finds a token unless other orders (or a
429) emptied the bucket. The default reserve of 2 is one idempotent submission.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_PER_MINUTE = 200
DEFAULT_BURST = 10
DEFAULT_ORDER_RESERVE = 2


class TokenBucket:
    """Blocking acquire; `clock` and `sleep` are injectable so tests run in no time."""

    def __init__(self, per_minute: int = DEFAULT_PER_MINUTE, burst: int = DEFAULT_BURST, *,
                 reserve: int = DEFAULT_ORDER_RESERVE,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate limit must be positive, got {per_minute} per minute")
        burst = max(1, min(burst, per_minute - 1)) if per_minute > 1 else 1
        self.per_minute = per_minute
        self.capacity = float(burst)
        # Reads must still be able to get a token: at least one is never reserved.
        self.reserve = float(max(0, min(reserve, burst - 1)))
        self.rate = max(per_minute - burst, 1) / 60.0   # tokens per second
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, priority: bool = False) -> float:
        """Take one token, waiting for it if needed; returns the seconds waited.

        `priority` (orders) may take the reserved tokens; other requests leave them.
        """
        needed = 1.0 if priority else 1.0 + self.reserve
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                # The epsilon: after sleeping exactly the computed delay, float rounding may
                # leave 0.99999...; without it the loop would spin on ever tinier sleeps.
                if self._tokens >= needed - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                delay = (needed - self._tokens) / self.rate
            # Sleep outside the lock so other threads can refill-and-check meanwhile.
            self._sleep(delay)
            waited += delay

    def drain(self) -> None:
        """Empty the bucket: after a 429 the broker's count is ahead of ours."""
        with self._lock:
            self._tokens = 0.0
            self._last = self._clock()


class Backoff:
    """Exponential backoff: base * 2**attempt, capped; a 429's reset time wins if later."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap

    def delay(self, attempt: int, reset_after: float | None = None) -> float:
        delay = min(self.cap, self.base * (2 ** attempt))
        if reset_after is not None and reset_after > delay:
            delay = min(self.cap, reset_after)
        return delay
