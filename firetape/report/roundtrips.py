"""Round trips: a sleeve position's life from leaving zero to returning to zero.

Trips are per (strategy, symbol), because each strategy runs its own sleeve. PnL exists
twice: `pnl_exact`, accumulated as Decimal from the fills' exact text (the accounting
truth), and the float `pnl` the analytics use, recomputed from the float averages
as (avg_exit - avg_entry) x quantity - commission; a test holds them together.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

TRIP_COLUMNS = ("strategy", "symbol", "side", "entry_ts", "exit_ts", "quantity", "avg_entry",
                "avg_exit", "commission", "pnl", "pnl_exact", "return", "fills")

_ZERO = Decimal(0)


@dataclass
class _OpenTrip:
    """What a trip has accumulated so far; quantities unsigned, notionals price x quantity."""

    direction: int            # +1 long, -1 short
    entry_ts: int
    entry_quantity: Decimal = _ZERO
    entry_notional: Decimal = _ZERO
    exit_quantity: Decimal = _ZERO
    exit_notional: Decimal = _ZERO
    commission: Decimal = _ZERO
    fills: int = 0

    def close(self, strategy: str, symbol: str, exit_ts: int) -> dict:
        qty = self.entry_quantity
        # Long earns exit - entry, short earns entry - exit; commissions always cost.
        pnl = self.direction * (self.exit_notional - self.entry_notional) - self.commission
        avg_entry = self.entry_notional / qty
        return {
            "strategy": strategy, "symbol": symbol,
            "side": "long" if self.direction > 0 else "short",
            "entry_ts": self.entry_ts, "exit_ts": exit_ts, "quantity": float(qty),
            "avg_entry": float(avg_entry), "avg_exit": float(self.exit_notional / qty),
            "commission": float(self.commission), "pnl_exact": pnl,
            "return": float(pnl / self.entry_notional) if self.entry_notional else 0.0,
            "fills": self.fills,
        }


def _exact(fills: pd.DataFrame, name: str) -> list[Decimal]:
    # Frames from the log carry exact text; hand-built frames may carry floats only.
    exact = f"exact_{name}"
    if exact in fills.columns:
        return [Decimal(v) for v in fills[exact]]
    return [Decimal(repr(float(v))) for v in fills[name]]


def _sleeve_trips(strategy: str, symbol: str, ts: list[int], side: list[str],
                  qty: list[Decimal], price: list[Decimal], fee: list[Decimal]) -> list[dict]:
    trips: list[dict] = []
    position = _ZERO
    trip: _OpenTrip | None = None
    for t, sd, q, p, c in zip(ts, side, qty, price, fee):
        if q <= 0:
            continue
        direction = 1 if sd.upper() == "BUY" else -1
        remaining = q
        if trip is not None and direction != trip.direction:
            # A reducing fill: it closes at most the open position, the rest flips.
            closing = min(remaining, abs(position))
            trip.exit_quantity += closing
            trip.exit_notional += closing * p
            # A flipping fill's commission is split pro rata between the two trips.
            trip.commission += c * closing / q
            trip.fills += 1
            position += direction * closing
            remaining -= closing
            if position == 0:
                trips.append(trip.close(strategy, symbol, t))
                trip = None
        if remaining > 0:
            if trip is None:
                trip = _OpenTrip(direction=direction, entry_ts=t)
            trip.entry_quantity += remaining
            trip.entry_notional += remaining * p
            trip.commission += c * remaining / q
            trip.fills += 1
            position += direction * remaining
    return trips


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """Closed round trips of every (strategy, symbol) sleeve, in fill order.

    A trip opens when the sleeve position leaves 0 and closes when it returns to 0;
    adds and partial exits stay inside the trip, and a fill that flips the sign closes
    one trip and opens the next with the remainder. `quantity` is the total entered
    (= total exited), `avg_entry`/`avg_exit` are quantity-weighted prices, `pnl` is net
    of all the trip's commissions (float) and `pnl_exact` the same as a Decimal;
    `return` is pnl over the entry notional. A position still open at the end of the
    run is not a round trip and is left out.
    """
    if fills.empty:
        return pd.DataFrame(columns=list(TRIP_COLUMNS))
    qty, price, fee = _exact(fills, "quantity"), _exact(fills, "price"), _exact(fills, "commission")
    ordered = fills.assign(_q=qty, _p=price, _c=fee).sort_values("ts_event", kind="stable")
    trips: list[dict] = []
    for (strategy, symbol), sleeve in ordered.groupby(["strategy", "symbol"], sort=True):
        trips.extend(_sleeve_trips(strategy, symbol, sleeve["ts_event"].tolist(),
                                   sleeve["side"].tolist(), sleeve["_q"].tolist(),
                                   sleeve["_p"].tolist(), sleeve["_c"].tolist()))
    frame = pd.DataFrame(trips, columns=list(TRIP_COLUMNS))
    direction = frame["side"].map({"long": 1.0, "short": -1.0})
    frame["pnl"] = (direction * (frame["avg_exit"] - frame["avg_entry"]) * frame["quantity"]
                    - frame["commission"])
    return frame.sort_values(["exit_ts", "strategy", "symbol"], kind="stable",
                             ignore_index=True)
