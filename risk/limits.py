"""Risk limits: the configuration of the engine, validated when it is built or changed.

A bad limit stops start-up with the field and the reason (DESIGN rule 6); the same
validation runs when an operator changes one limit at run time (`with_limit`).
"""
from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

import msgspec

# Gross or per-symbol exposure above 10x equity is almost surely a typo, not a strategy.
_MAX_LEVERAGE = 10.0


class RiskLimits(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Every limit the risk engine applies. Fractions are of account equity; times are
    event time (seconds of `ts_event`), never the wall clock."""

    max_order_quantity: Decimal = Decimal("100000")
    max_order_notional: Decimal = Decimal("1000000")
    max_symbol_exposure: float = 0.10
    max_gross_exposure: float = 0.30
    max_drawdown: float = 0.08
    halt_cooldown_s: int = 86400
    max_daily_loss: float = 0.03
    min_equity: Decimal = Decimal("5000")
    max_orders_per_minute: int = 120
    regular_hours_only: bool = False
    var_budget: float = 0.05
    cvar_budget: float = 0.08
    var_confidence: float = 0.95
    var_lookback: int = 250
    var_min_history: int = 20
    max_valuation_age_s: int = 7 * 86400
    kill_switch: bool = False   # True: the engine starts with the kill switch engaged

    def __post_init__(self) -> None:
        _money(self, "max_order_quantity", allow_zero=False)
        _money(self, "max_order_notional", allow_zero=False)
        _money(self, "min_equity", allow_zero=True)
        _fraction(self, "max_symbol_exposure", upper=_MAX_LEVERAGE)
        _fraction(self, "max_gross_exposure", upper=_MAX_LEVERAGE)
        for name in ("max_drawdown", "max_daily_loss", "var_budget", "cvar_budget"):
            _fraction(self, name, upper=1.0)
        confidence = _number(self, "var_confidence")
        if not 0.5 <= confidence < 1.0:
            raise ValueError(f"var_confidence: must be in [0.5, 1), got {confidence!r}")
        _count(self, "halt_cooldown_s", minimum=0)
        _count(self, "max_orders_per_minute", minimum=1)
        _count(self, "max_valuation_age_s", minimum=1)
        # Two returns is the least from which a tail can be read at all.
        _count(self, "var_min_history", minimum=2)
        _count(self, "var_lookback", minimum=self.var_min_history)
        for name in ("regular_hours_only", "kill_switch"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")


class LimitTexts:
    """The limits as the checks print and compare them, made once per RiskLimits object
    (str() of a Decimal or float, and Decimal(repr()) of a float fraction, cost more
    than the checks' own arithmetic)."""

    __slots__ = ("limits", "max_order_quantity", "max_order_notional", "max_symbol_exposure",
                 "max_gross_exposure", "symbol_exposure_fraction", "gross_exposure_fraction",
                 "min_equity", "max_orders_per_minute", "max_valuation_age_s", "var_budget",
                 "cvar_budget")

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.max_order_quantity = str(limits.max_order_quantity)
        self.max_order_notional = str(limits.max_order_notional)
        self.max_symbol_exposure = str(limits.max_symbol_exposure)
        self.max_gross_exposure = str(limits.max_gross_exposure)
        # Exact copies of the float fractions, compared with Decimal ratios.
        self.symbol_exposure_fraction = Decimal(repr(limits.max_symbol_exposure))
        self.gross_exposure_fraction = Decimal(repr(limits.max_gross_exposure))
        self.min_equity = str(limits.min_equity)
        self.max_orders_per_minute = str(limits.max_orders_per_minute)
        self.max_valuation_age_s = str(limits.max_valuation_age_s)
        self.var_budget = str(limits.var_budget)
        self.cvar_budget = str(limits.cvar_budget)


# The texts of the limits last asked for: limits change rarely, so one entry is enough.
# Replaced as a whole tuple, so a reader never pairs one object with another's texts.
_last_texts: tuple[RiskLimits | None, LimitTexts | None] = (None, None)


def limit_texts(limits: RiskLimits) -> LimitTexts:
    """The LimitTexts of `limits` (cached for the most recent limits object)."""
    global _last_texts
    cached, texts = _last_texts
    if cached is limits:
        return texts   # type: ignore[return-value]
    texts = LimitTexts(limits)
    _last_texts = (limits, texts)
    return texts


def with_limit(limits: RiskLimits, name: str, text: str) -> RiskLimits:
    """A copy of `limits` with field `name` set from its text form (as in LimitChanged).

    Raises ValueError naming the field when the name is unknown or the value invalid;
    `limits` itself is never changed.
    """
    defaults = {f.name: f.default for f in msgspec.structs.fields(RiskLimits)}
    if name not in defaults:
        raise ValueError(f"{name}: no such risk limit; known: {', '.join(defaults)}")
    value = _parse(name, text, type(defaults[name]))
    values = msgspec.structs.asdict(limits)
    values[name] = value
    return RiskLimits(**values)


def _parse(name: str, text: str, kind: type) -> object:
    raw = text.strip()
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError("expected true or false")
            return lowered in ("true", "1")
        if kind is Decimal:
            return Decimal(raw)
        if kind is int:
            return int(raw)
        return float(raw)
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"{name}: cannot read {text!r} as {kind.__name__} ({exc})") from None


def _money(limits: RiskLimits, name: str, allow_zero: bool) -> None:
    value = getattr(limits, name)
    # Floats are refused: a money limit must be exact like the money it bounds.
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValueError(f"{name}: must be a Decimal or integer, got {value!r}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _number(limits: RiskLimits, name: str) -> float:
    value = getattr(limits, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    return float(value)


def _fraction(limits: RiskLimits, name: str, upper: float) -> None:
    value = _number(limits, name)
    if not 0.0 < value <= upper:
        raise ValueError(f"{name}: must be in (0, {upper:g}] of equity, got {value!r}")


def _count(limits: RiskLimits, name: str, minimum: int) -> None:
    value = getattr(limits, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value!r}")
