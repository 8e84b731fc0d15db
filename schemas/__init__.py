"""Event schemas: one module per family, frozen msgspec Structs, tagged by class name.

Every event starts with the header of `schemas.header.Event`. Decoders ignore unknown
fields, so an old consumer survives a newer producer; new fields are appended with defaults.
"""
from schemas.broker import (
    AdoptedPosition,
    BrokerAccountDetected,
    BrokerBalanceRead,
    BrokerOrderRefused,
    BrokerOrderSubmitted,
    BrokerOrderTimes,
    BrokerStateAdopted,
    BrokerTradeUpdate,
    ReconciliationCompleted,
    ReconciliationDifference,
    WorkingOrder,
)
from schemas.carryover import (
    CarriedDay, CarriedDirection, CarriedHalt, CarriedLot, CarriedMark, CarriedReturns,
    CarriedTradeRecord, CarriedVote, StateCarriedOver,
)
from schemas.control import (
    HaltReleased,
    KillSwitchEngaged,
    KillSwitchReleased,
    LimitChanged,
    ReconciliationAcknowledged,
    StrategyDisabled,
    StrategyEnabled,
)
from schemas.deadletter import DeadLettered
from schemas.fills import FillExecuted
from schemas.header import Event
from schemas.market import Bar, Quote, TradeTick
from schemas.orders import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderSubmitted,
    PlaceOrder,
    SubmitOrder,
)
from schemas.portfolio import PortfolioValued, PositionChanged
from schemas.risk import CheckResult, OrderApproved, OrderDenied, TradingStateChanged
from schemas.signals import SignalGenerated, StrategyFailed

__all__ = [
    "AdoptedPosition", "Bar", "BrokerAccountDetected", "BrokerBalanceRead",
    "BrokerOrderRefused", "BrokerOrderSubmitted", "BrokerOrderTimes", "BrokerStateAdopted",
    "BrokerTradeUpdate", "CarriedDay", "CarriedDirection", "CarriedHalt", "CarriedLot",
    "CarriedMark", "CarriedReturns", "CarriedTradeRecord", "CarriedVote", "CheckResult",
    "DeadLettered", "Event", "FillExecuted", "HaltReleased", "KillSwitchEngaged",
    "KillSwitchReleased", "LimitChanged", "OrderAccepted", "OrderApproved", "OrderCanceled",
    "OrderDenied", "OrderExpired", "OrderFilled", "OrderPartiallyFilled", "OrderRejected",
    "OrderSubmitted", "PlaceOrder", "PortfolioValued", "PositionChanged", "Quote",
    "ReconciliationAcknowledged", "ReconciliationCompleted", "ReconciliationDifference",
    "SignalGenerated", "StateCarriedOver", "StrategyDisabled", "StrategyEnabled",
    "StrategyFailed", "SubmitOrder", "TradeTick", "TradingStateChanged", "WorkingOrder",
]
