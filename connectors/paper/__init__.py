"""The paper broker: fills approved orders against bars, with costs, latency and brackets.

`PaperBroker` is the pure execution stage; `ExecutionConfig` its assumptions; `matching`
and `costs` hold the price rules and the cost model it applies.
"""
from connectors.paper.broker import PaperBroker
from connectors.paper.config import ExecutionConfig

__all__ = ["ExecutionConfig", "PaperBroker"]
