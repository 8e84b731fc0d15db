"""The fail-closed pre-trade risk engine: limits, checks, VaR and the RiskStage.

Pure code only: nothing in this package does I/O or talks to a network.
"""
from risk.engine import RiskStage
from risk.limits import RiskLimits, with_limit

__all__ = ["RiskLimits", "RiskStage", "with_limit"]
