"""What strategies say: a target direction per symbol, or that they failed."""
from schemas.header import Event

LONG = 1
FLAT = 0
SHORT = -1


class SignalGenerated(Event, frozen=True, kw_only=True, gc=False):
    """A strategy's target for a symbol after a bar: LONG (1), FLAT (0) or SHORT (-1)."""

    strategy: str
    symbol: str
    direction: int
    confidence: float   # 0..1, used by confidence-weighted aggregation
    price: float        # the close of the bar the signal was computed on
    volatility: float = 0.0  # per-bar return volatility seen by the strategy, 0 if unknown


class StrategyFailed(Event, frozen=True, kw_only=True, gc=False):
    """A strategy raised on a bar: its output for that bar is dropped, the others go on."""

    strategy: str
    symbol: str
    error: str
