"""Alpaca's bar timeframes ("1Min", "15Min", "1Hour", "1Day") and when such a bar closes.

firetape stamps a bar with its CLOSE (the moment it became known, see schemas.market.Bar)
while Alpaca stamps it with its START, so every bar that crosses the border is shifted
here. Daily bars close at 16:00 New York, as the synthetic generator and the sample data
stamp them; Alpaca's daily `t` is midnight New York of the trading date.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
_NS = 1_000_000_000
_UNIT_NS = {"Min": 60 * _NS, "Hour": 3600 * _NS, "Day": 86_400 * _NS}
# Alpaca's limits (docs: "[1-59]Min, [1-23]Hour, 1Day, 1Week, [1,2,3,4,6,12]Month").
_MAX_AMOUNT = {"Min": 59, "Hour": 23, "Day": 1}
_PATTERN = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_ALIASES = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}
OFFERED = "1-59Min, 1-23Hour or 1Day"


class TimeframeError(ValueError):
    """A timeframe Alpaca does not offer, or one firetape's bar format cannot stamp."""


@dataclass(frozen=True)
class Timeframe:
    amount: int
    unit: str          # Min | Hour | Day

    @property
    def text(self) -> str:
        """Alpaca's spelling, e.g. "15Min"."""
        return f"{self.amount}{self.unit}"

    @property
    def length_ns(self) -> int:
        return self.amount * _UNIT_NS[self.unit]

    def close_ns(self, start_ns: int) -> int:
        """The close time of the bar that starts at `start_ns` (both UTC nanoseconds)."""
        if self.unit != "Day":
            return start_ns + self.length_ns
        start = datetime.fromtimestamp(start_ns // _NS, NEW_YORK)
        close = datetime.combine(start.date(), time(16), NEW_YORK)
        return int(close.timestamp()) * _NS

    def start_ns(self, close_ns: int) -> int:
        """The start time of the bar that closes at `close_ns` (`close_ns`'s inverse)."""
        if self.unit != "Day":
            return close_ns - self.length_ns
        close = datetime.fromtimestamp(close_ns // _NS, NEW_YORK)
        return int(datetime.combine(close.date(), time(0), NEW_YORK).timestamp()) * _NS

    def chunk(self) -> timedelta:
        """How much time one fetch chunk covers: about 10,000 bars (one full page) at most."""
        return timedelta(days=7) if self.unit == "Min" else timedelta(days=366)


def parse_timeframe(text: str) -> Timeframe:
    """"1Min" -> Timeframe(1, "Min"); a clear TimeframeError for anything Alpaca does not offer."""
    match = _PATTERN.match(text.strip())
    if not match:
        raise TimeframeError(f"timeframe {text!r} is not one Alpaca offers; use {OFFERED}")
    amount, unit = int(match.group(1)), _ALIASES.get(match.group(2), match.group(2))
    if unit in ("Week", "Month"):
        raise TimeframeError(f"timeframe {text!r}: weekly and monthly bars have no fixed close "
                             f"time in firetape's bar format; use {OFFERED}")
    if not 1 <= amount <= _MAX_AMOUNT[unit]:
        raise TimeframeError(f"timeframe {text!r} is not one Alpaca offers; use {OFFERED}")
    return Timeframe(amount, unit)
