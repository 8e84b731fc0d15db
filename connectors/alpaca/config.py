"""The [alpaca] config section (proposed for firetape.config.FiretapeConfig as `alpaca`).

Like every config Struct it rejects unknown keys, so a typo such as `acount_type` stops
start-up instead of silently trading paper (or live).
"""
from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.broker import LIVE, PAPER

ENFORCE = "enforce"
WARN = "warn"
HALT = "halt"
ADOPT = "adopt"


class AlpacaConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Alpaca connection, safety and limits. Keys are NOT here: environment only."""

    account_type: str = PAPER            # must match --broker alpaca-live/--live to trade live
    minimum_balance: Decimal = Decimal(5000)   # equity AND buying power, before each order
    balance_check: str = ENFORCE         # enforce: an unreadable account denies; warn: allows
    balance_max_age_seconds: float = 300.0     # an older balance counts as unreadable
    reconciliation: str = HALT           # halt: HALTED until acknowledged; adopt: broker wins
    rate_limit_per_minute: int = 200     # Alpaca's per-account limit, all endpoints together
    rate_limit_burst: int = 10
    rate_limit_order_reserve: int = 2    # tokens reads leave for orders (one submission)
    http_timeout_seconds: float = 10.0   # one HTTP request
    call_timeout_seconds: float = 20.0   # one call as the runtime awaits it, retries included
    data_feed: str = "iex"               # iex (free) or sip (paid subscription)
    trading_url: str = ""                # overrides, e.g. a proxy; "" = Alpaca's own
    data_url: str = ""
    data_stream_url: str = ""
    trading_stream_url: str = ""

    def __post_init__(self) -> None:
        if self.account_type not in (PAPER, LIVE):
            raise ValueError(f"alpaca.account_type: must be 'paper' or 'live', "
                             f"got {self.account_type!r}")
        if self.balance_check not in (ENFORCE, WARN):
            raise ValueError(f"alpaca.balance_check: must be 'enforce' or 'warn', "
                             f"got {self.balance_check!r}")
        if self.reconciliation not in (HALT, ADOPT):
            raise ValueError(f"alpaca.reconciliation: must be 'halt' or 'adopt', "
                             f"got {self.reconciliation!r}")
        if self.minimum_balance < 0:
            raise ValueError("alpaca.minimum_balance: must be >= 0")
        if self.rate_limit_per_minute <= 0:
            raise ValueError("alpaca.rate_limit_per_minute: must be positive")
        if not 0 <= self.rate_limit_order_reserve < max(self.rate_limit_burst, 1):
            raise ValueError("alpaca.rate_limit_order_reserve: must be >= 0 and less than "
                             "rate_limit_burst (reads need a token too)")
        if self.data_feed not in ("iex", "sip"):
            raise ValueError(f"alpaca.data_feed: must be 'iex' or 'sip', got {self.data_feed!r}")
