"""Every topic as data. Both runtimes, the CLI (`firetape topics`) and the tests read this.

An event type belongs to exactly one topic, so a stage returns events and the runtime
routes each by its type. `key` names the event field that is the record key: market data
and signals are keyed by symbol (strategies scale by symbol partitions); everything that
decides across symbols is keyed by account, so risk, execution and portfolio see one
ordered stream per account.
"""
from __future__ import annotations

import msgspec

import schemas as s

DAY_MS = 24 * 3600 * 1000


class TopicSpec(msgspec.Struct, frozen=True):
    name: str
    key: str                       # event field used as the record key
    values: tuple[type, ...]       # the tagged union carried by the topic
    partitions: int
    cleanup: str                   # "delete" or "compact"
    retention_ms: int              # -1: keep forever
    producer: str
    consumers: tuple[str, ...]
    description: str


REGISTRY: tuple[TopicSpec, ...] = (
    TopicSpec("md.bars", "symbol", (s.Bar,), 8, "delete", -1, "feed",
              ("execution", "portfolio", "risk", "strategy", "audit"),
              "OHLCV bars; the input a backtest replays"),
    TopicSpec("md.quotes", "symbol", (s.Quote,), 8, "delete", 7 * DAY_MS, "feed", ("audit",),
              "top-of-book quotes (recorded, not yet traded on)"),
    TopicSpec("md.trades", "symbol", (s.TradeTick,), 8, "delete", 7 * DAY_MS, "feed", ("audit",),
              "trade prints (recorded, not yet traded on)"),
    TopicSpec("signals", "symbol", (s.SignalGenerated, s.StrategyFailed), 8, "delete", -1,
              "strategy", ("allocator", "audit"),
              "each strategy's target direction per symbol, and strategy errors"),
    TopicSpec("order.requests", "account", (s.SubmitOrder,), 4, "delete", -1, "allocator",
              ("risk", "audit"), "sized order requests, before risk"),
    TopicSpec("risk.decisions", "account",
              (s.OrderApproved, s.OrderDenied, s.TradingStateChanged), 4, "delete", -1, "risk",
              ("allocator", "audit"),
              "one decision per request, every check with value and limit; trading state"),
    TopicSpec("orders", "account", (s.PlaceOrder,), 4, "delete", -1, "risk",
              ("execution", "audit"), "approved orders, to execution"),
    TopicSpec("order.updates", "account",
              (s.OrderSubmitted, s.OrderAccepted, s.OrderRejected, s.OrderCanceled,
               s.OrderExpired, s.OrderPartiallyFilled, s.OrderFilled, s.BrokerOrderTimes), 4,
              "delete", -1,
              "execution", ("risk", "allocator", "audit"), "order lifecycle from the broker"),
    TopicSpec("fills", "account", (s.FillExecuted,), 4, "delete", -1, "execution",
              ("portfolio", "risk", "allocator", "audit"), "executions with exact price and cost"),
    TopicSpec("portfolio", "account", (s.PositionChanged, s.PortfolioValued), 4, "delete", -1,
              "portfolio", ("risk", "allocator", "audit"), "positions after fills; valuations"),
    # Kept whole, never compacted: every operator command is part of the audit trail, and
    # a strategy worker that takes a partition over late must still find every command.
    TopicSpec("control", "account",
              (s.KillSwitchEngaged, s.KillSwitchReleased, s.HaltReleased, s.LimitChanged,
               s.StrategyEnabled, s.StrategyDisabled, s.ReconciliationAcknowledged), 1,
              "delete", -1, "operator",
              ("risk", "strategy", "audit"), "operator commands, read by every agent"),
    TopicSpec("dlq", "source_topic", (s.DeadLettered,), 1, "delete", -1, "any",
              ("audit",), "undecodable or invalid records, with the reason and original bytes"),
    # An input topic: what a real broker said (confirmed account, reconciliation, submit
    # outcomes, trade updates) is recorded here before any stage sees it, so a replay of a
    # live run feeds it back instead of calling the broker. So is the state a live run
    # carries over from the previous one (read from that run's log, not from a broker).
    # Risk comes before portfolio: a carried state reaches risk (its trading day, released
    # drawdown) before the portfolio's first valuation does.
    TopicSpec("broker.reports", "account",
              (s.BrokerAccountDetected, s.BrokerBalanceRead, s.ReconciliationDifference,
               s.ReconciliationCompleted, s.BrokerOrderSubmitted, s.BrokerOrderRefused,
               s.BrokerTradeUpdate, s.BrokerStateAdopted, s.StateCarriedOver), 4, "delete",
              -1, "broker", ("execution", "risk", "portfolio", "allocator", "strategy", "audit"),
              "the broker's reports: account, reconciliation, adopted state, submit outcomes, "
              "trade updates; and the state a live run carries over from the previous one"),
)

_BY_NAME = {t.name: t for t in REGISTRY}
_TOPIC_OF_TYPE = {value: t.name for t in REGISTRY for value in t.values}

# Topics a backtest feeds in; everything else is output and is digested.
INPUT_TOPICS = ("md.bars", "md.quotes", "md.trades", "control", "broker.reports")


def spec(name: str) -> TopicSpec:
    """The spec of topic `name`; KeyError names the unknown topic."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(_BY_NAME)}") from None


def topic_of(event_type: type) -> str:
    """The topic an event type is published on."""
    return _TOPIC_OF_TYPE[event_type]
