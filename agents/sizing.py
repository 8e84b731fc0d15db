"""Position sizing: how many shares a LONG or SHORT target means.

Every method returns a whole, non-negative number of shares (rounded down to the lot size);
the caller applies the sign. Sizing never trades by itself: the allocator turns the change
of target into an order, and risk still decides.
"""
from __future__ import annotations

import math
from decimal import Decimal

import msgspec

METHODS = ("fixed_quantity", "fixed_fraction", "vol_target", "kelly")


class SizingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """[sizing] in firetape.toml."""

    method: str = "fixed_quantity"
    quantity: Decimal = Decimal(100)   # fixed_quantity: shares per position
    fraction: float = 0.02             # fixed_fraction (and kelly's base): equity share
    vol_target: float = 0.10           # vol_target: annualized volatility per position
    bars_per_year: int = 252           # vol_target: annualizes per-bar volatility
    kelly_fraction: float = 0.5        # kelly: fraction of the full Kelly bet
    kelly_min: float = 0.25            # kelly: multiplier bounds around `fraction`
    kelly_max: float = 1.5
    kelly_min_trades: int = 5          # kelly: closed trades needed before Kelly applies
    lot_size: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"sizing.method: {self.method!r} is not one of {', '.join(METHODS)}")
        for field in ("fraction", "vol_target", "kelly_fraction"):
            if not 0 < getattr(self, field) <= 1:
                raise ValueError(f"sizing.{field}: must be in (0, 1], got {getattr(self, field)}")
        if not 0 < self.kelly_min <= self.kelly_max:
            raise ValueError("sizing.kelly_min: must be > 0 and <= kelly_max")
        if self.quantity <= 0 or self.lot_size <= 0:
            raise ValueError("sizing.quantity and sizing.lot_size must be positive")


class TradeRecord:
    """Closed-trade outcomes of one strategy, for Kelly sizing."""

    __slots__ = ("wins", "losses", "win_sum", "loss_sum")

    def __init__(self) -> None:
        self.wins = self.losses = 0
        self.win_sum = self.loss_sum = 0.0

    def add(self, pnl: float) -> None:
        if pnl > 0:
            self.wins += 1
            self.win_sum += pnl
        elif pnl < 0:
            self.losses += 1
            self.loss_sum -= pnl

    @property
    def count(self) -> int:
        return self.wins + self.losses

    def kelly(self) -> float | None:
        """Full-Kelly fraction W - (1 - W) / R, or None without both wins and losses."""
        if not self.wins or not self.losses:
            return None
        win_rate = self.wins / self.count
        payoff = (self.win_sum / self.wins) / (self.loss_sum / self.losses)
        return win_rate - (1 - win_rate) / payoff


def target_shares(config: SizingConfig, *, price: float, equity: Decimal,
                  volatility: float = 0.0, record: TradeRecord | None = None) -> Decimal:
    """Shares for a full position at `price` under `config`; 0 when it cannot be sized."""
    if price <= 0 or not math.isfinite(price):
        return Decimal(0)
    method = config.method
    if method == "fixed_quantity":
        shares = config.quantity
    else:
        if method == "fixed_fraction":
            fraction = config.fraction
        elif method == "vol_target":
            if volatility <= 0:
                return Decimal(0)   # unknown volatility: no size rather than a guess
            annual = volatility * math.sqrt(config.bars_per_year)
            fraction = min(1.0, config.vol_target / annual)
        else:  # kelly
            multiplier = 1.0
            kelly = record.kelly() if record is not None else None
            if kelly is not None and record.count >= config.kelly_min_trades:
                multiplier = config.kelly_fraction * kelly / config.fraction
                multiplier = min(config.kelly_max, max(config.kelly_min, multiplier))
            fraction = config.fraction * multiplier
        shares = Decimal(repr(float(equity) * fraction / price))
    return (shares // config.lot_size) * config.lot_size
