"""What can go wrong talking to Alpaca, as firetape's own exceptions.

Each says whether retrying can help. None of them carries request headers, so no key
can reach a message or a log through an exception.
"""
from __future__ import annotations


class AlpacaError(RuntimeError):
    """Base of every error of this package."""


class BrokerRefused(AlpacaError):
    """A 4xx answer (other than 429): the request itself is wrong or not allowed.

    For an order this is a rejection (insufficient buying power, market closed, asset not
    tradable...); `message` is Alpaca's reason. Retrying the same request cannot help.
    """

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"Alpaca refused the request (HTTP {status}, code {code}): {message}")
        self.status = status
        self.code = code
        self.message = message


class RateLimited(AlpacaError):
    """HTTP 429. `reset_after`: seconds until Alpaca's window resets, if it said."""

    def __init__(self, reset_after: float | None) -> None:
        super().__init__("Alpaca rate limit reached (HTTP 429)")
        self.reset_after = reset_after


class BrokerUnavailable(AlpacaError):
    """5xx, a timeout or a broken connection: the outcome of the request is unknown."""


class BrokerTimeout(BrokerUnavailable):
    """A call did not finish within its time budget (the executor's timeout)."""


class AccountMismatch(AlpacaError):
    """Paper/live disagreement between the flag, the config, the keys and the broker."""


class BalanceTooLow(AlpacaError):
    """Equity or buying power under the configured minimum."""
