"""Operator control: kill switch, limit changes, strategies on and off, halt release."""
from schemas.header import Event


class KillSwitchEngaged(Event, frozen=True, kw_only=True, gc=False):
    account: str
    reason: str
    operator: str = ""


class KillSwitchReleased(Event, frozen=True, kw_only=True, gc=False):
    account: str
    reason: str
    operator: str = ""


class HaltReleased(Event, frozen=True, kw_only=True, gc=False):
    """The explicit event that lifts a HALTED or REDUCING state."""

    account: str
    reason: str
    operator: str = ""


class ReconciliationAcknowledged(Event, frozen=True, kw_only=True, gc=False):
    """The operator accepts the differences start-up reconciliation found: lifts the
    reconciliation halt, and only that one (a kill switch stays engaged)."""

    account: str
    reason: str
    operator: str = ""


class LimitChanged(Event, frozen=True, kw_only=True, gc=False):
    """Set one risk limit by its config name (e.g. max_gross_exposure) to `value`."""

    account: str
    name: str
    value: str
    operator: str = ""


class StrategyEnabled(Event, frozen=True, kw_only=True, gc=False):
    strategy: str
    operator: str = ""
    account: str = ""   # the control topic's key; "" means every account


class StrategyDisabled(Event, frozen=True, kw_only=True, gc=False):
    strategy: str
    operator: str = ""
    account: str = ""   # the control topic's key; "" means every account
