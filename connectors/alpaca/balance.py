"""Balance protection: before each order, the last known equity and buying power must
both be at least the configured minimum, or the order is denied with the numbers.

Fail-closed: an account that could not be read, or whose last reading is older than
`balance_max_age_seconds`, denies the order, unless `balance_check = "warn"`, which lets
it through with the reason recorded. A balance that is known to be too low always denies.
The result is a schemas.risk.CheckResult so it reads like every other pre-trade check.
"""
from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from connectors.alpaca import wire
from connectors.alpaca.config import WARN, AlpacaConfig
from schemas.risk import CheckResult

NAME = "broker_balance"
_NS = 1_000_000_000


class BalanceSnapshot(NamedTuple):
    """Equity and buying power as Alpaca reported them, and when (UTC ns)."""

    equity: Decimal | None
    buying_power: Decimal | None
    read_ns: int

    @classmethod
    def of(cls, account: wire.Account, read_ns: int) -> BalanceSnapshot:
        return cls(account.equity, account.buying_power, read_ns)


def check_balance(snapshot: BalanceSnapshot | None, config: AlpacaConfig,
                  now_ns: int) -> CheckResult:
    """The balance check for an order at `now_ns` (an event time, never the wall clock)."""
    minimum = config.minimum_balance
    limit = f">= {minimum}"
    unknown = _unknown_reason(snapshot, config, now_ns)
    if unknown:
        if config.balance_check == WARN:
            return CheckResult(NAME, True, "unknown", limit,
                               f"{unknown}; allowed because balance_check = \"warn\"")
        return CheckResult(NAME, False, "unknown", limit, f"{unknown} (fail-closed)")
    low = [f"{name} {value} < minimum {minimum}"
           for name, value in (("equity", snapshot.equity),
                               ("buying power", snapshot.buying_power)) if value < minimum]
    value = f"equity {snapshot.equity}, buying power {snapshot.buying_power}"
    return CheckResult(NAME, not low, value, limit, "; ".join(low))


def _unknown_reason(snapshot: BalanceSnapshot | None, config: AlpacaConfig, now_ns: int) -> str:
    if snapshot is None:
        return "broker account could not be read"
    if snapshot.equity is None or snapshot.buying_power is None:
        return "broker account reported no equity or buying power"
    age = (now_ns - snapshot.read_ns) / _NS
    if age > config.balance_max_age_seconds:
        return (f"last broker balance is {age:.0f} s old (max "
                f"{config.balance_max_age_seconds:g} s)")
    return ""
