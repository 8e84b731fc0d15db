"""How the paper broker executes: fill timing, costs, latency, volume cap, price grid."""
from __future__ import annotations

import math
from decimal import Decimal

import msgspec

NEXT_OPEN = "next_open"
CLOSE = "close"
FILL_MODES = (NEXT_OPEN, CLOSE)


class ExecutionConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Execution assumptions of a paper account; a bad value raises ValueError naming the field.

    - `fill`: "next_open" fills a market order at the open of the first bar after it can
      trade; "close" fills it at once at the signal bar's close (the order's `ref_price`).
    - `slippage_bps`: adverse slippage on MARKET and STOP fills, in basis points.
    - `commission_per_share` / `commission_per_order`: the order fee is charged on its
      first fill only.
    - `latency_ms`: event time from the order until it is accepted and may first trade.
    - `max_volume_share`: 0 disables the cap; otherwise a bar fills at most
      floor(share x bar volume) shares and the rest waits for later bars.
    - `price_increment`: the tick every fill price is rounded to (ROUND_HALF_EVEN).
    """

    fill: str = NEXT_OPEN
    slippage_bps: float = 0.0
    commission_per_share: Decimal = Decimal(0)
    commission_per_order: Decimal = Decimal(0)
    latency_ms: int = 0
    max_volume_share: float = 0.0
    price_increment: Decimal = Decimal("0.0001")

    def __post_init__(self) -> None:
        if self.fill not in FILL_MODES:
            raise ValueError(f"fill: must be one of {', '.join(FILL_MODES)}, got {self.fill!r}")
        _require_rate("slippage_bps", self.slippage_bps)
        _require_rate("max_volume_share", self.max_volume_share)
        if self.max_volume_share > 1:
            # A bar cannot trade more than its own volume.
            raise ValueError(f"max_volume_share: must be <= 1, got {self.max_volume_share!r}")
        _require_money("commission_per_share", self.commission_per_share)
        _require_money("commission_per_order", self.commission_per_order)
        _require_money("price_increment", self.price_increment)
        if self.price_increment == 0:
            raise ValueError("price_increment: must be > 0")
        if isinstance(self.latency_ms, bool) or not isinstance(self.latency_ms, int):
            raise ValueError(f"latency_ms: must be an integer, got {self.latency_ms!r}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms: must be >= 0, got {self.latency_ms!r}")

    @property
    def latency_ns(self) -> int:
        """The latency in event-time nanoseconds."""
        return self.latency_ms * 1_000_000


def _require_rate(field: str, value: object) -> None:
    # bool is an int subclass; True as a slippage is a typo, not a rate.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field}: must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{field}: must be a finite number >= 0, got {value!r}")


def _require_money(field: str, value: object) -> None:
    # Floats are refused: money is exact (DESIGN rule 2); pass a Decimal or a string in a file.
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValueError(f"{field}: must be a Decimal, got {value!r}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{field}: must be finite, got {value!r}")
    if value < 0:
        raise ValueError(f"{field}: must be >= 0, got {value!r}")
