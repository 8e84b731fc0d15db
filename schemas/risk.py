"""Risk decisions. Every order request gets exactly one OrderApproved or OrderDenied,
listing every check with the value it saw and the limit it applied."""
from decimal import Decimal

import msgspec

from schemas.header import Event

ACTIVE = "ACTIVE"
REDUCING = "REDUCING"
HALTED = "HALTED"


class CheckResult(msgspec.Struct, frozen=True, gc=False):
    name: str
    passed: bool
    value: str   # what the check saw, as text so Decimals stay exact
    limit: str
    reason: str = ""


class RiskDecision(Event, frozen=True, kw_only=True, gc=False):
    """What an approval and a denial both record: the order's terms and every check."""

    client_order_id: str
    account: str
    strategy: str
    symbol: str
    side: str
    quantity: Decimal
    trading_state: str
    checks: tuple[CheckResult, ...]


class OrderApproved(RiskDecision, frozen=True, kw_only=True, gc=False):
    pass


class OrderDenied(RiskDecision, frozen=True, kw_only=True, gc=False):
    reasons: tuple[str, ...]   # the failed checks' reasons, values included


class TradingStateChanged(Event, frozen=True, kw_only=True, gc=False):
    """ACTIVE / REDUCING / HALTED. A halt is lifted only by another of these events."""

    account: str
    state: str
    previous: str
    reason: str
    until_ts: int = 0   # earliest event time at which a release is accepted (0: any time)
