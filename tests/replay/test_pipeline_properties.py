"""Invariants of the whole pipeline over random markets and configs (hypothesis):
no fill without an approved order, exactly one decision per request, and the portfolio's
equity equal to cash plus positions marked at the last closes."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas as s
from connectors.synthetic import generate_bars, round_prices
from firetape.config import load_config
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.feed import bar_events, in_replay_order
from firetape.runtime.pipeline import build_stages


class Tap:
    """Collects every event the bus writes (a log stand-in, in memory)."""

    def __init__(self) -> None:
        self.events: list = []

    def partition_log(self, topic, partition):
        return self

    def append(self, key, value, ts_event, ts_wall):
        self.events.append(value)
        return len(self.events) - 1

    def flush(self):
        pass


configs = st.fixed_dictionaries({
    "strategies": st.lists(st.sampled_from(["sma_cross", "momentum", "mean_reversion"]),
                           min_size=1, max_size=3, unique=True),
    "fill": st.sampled_from(["next_open", "close"]),
    "method": st.sampled_from(["fixed_quantity", "fixed_fraction"]),
    "mode": st.sampled_from(["none", "majority", "weighted"]),
    "max_gross_exposure": st.sampled_from([0.05, 0.3]),
    "stop_loss_pct": st.sampled_from([0.0, 0.02]),
    "max_volume_share": st.sampled_from([0.0, 0.001]),
})


def run(seed: int, c: dict):
    env = {"FIRETAPE_RUN__STRATEGIES": repr(c["strategies"]).replace("'", '"'),
           "FIRETAPE_EXECUTION__FILL": f'"{c["fill"]}"',
           "FIRETAPE_EXECUTION__MAX_VOLUME_SHARE": str(c["max_volume_share"]),
           "FIRETAPE_SIZING__METHOD": f'"{c["method"]}"',
           "FIRETAPE_SIZING__FRACTION": "0.05",
           "FIRETAPE_AGGREGATION__MODE": f'"{c["mode"]}"',
           "FIRETAPE_RISK__MAX_GROSS_EXPOSURE": str(c["max_gross_exposure"]),
           "FIRETAPE_ORDERS__STOP_LOSS_PCT": str(c["stop_loss_pct"])}
    config = load_config(None, environ=env)
    frame = in_replay_order(round_prices(generate_bars(3, 150, seed=seed, interval="1d")))
    tap = Tap()
    bus = EmbeddedBus(build_stages(config, "prop"), tap, "prop")
    for bar in bar_events(frame, "prop"):
        bus.publish(bar)
    bus.finish()
    decoder = msgspec.json.Decoder()
    return [decoder.decode(v) for v in tap.events], frame, config


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), c=configs)
def test_pipeline_when_random_market_and_config_then_invariants_hold(seed, c):
    events, frame, config = run(seed, c)
    by_type = Counter(e["type"] for e in events)
    requests = [e for e in events if e["type"] == "SubmitOrder"]
    decisions = Counter(e["client_order_id"] for e in events
                        if e["type"] in ("OrderApproved", "OrderDenied"))
    approved = {e["client_order_id"] for e in events if e["type"] == "OrderApproved"}
    placed = {e["client_order_id"]: e for e in events if e["type"] == "PlaceOrder"}
    # every request has exactly one decision, and nothing is decided that was not requested
    assert sorted(decisions) == sorted(r["client_order_id"] for r in requests)
    assert set(decisions.values()) <= {1}
    # no fill without an approved order (bracket legs fill under their approved parent)
    for fill in (e for e in events if e["type"] == "FillExecuted"):
        order_id = fill["client_order_id"]
        parent = order_id.rsplit(".", 1)[0] if order_id not in placed else order_id
        assert parent in approved, order_id
    # the last valuation: equity = cash + positions marked at the last closes, exactly
    final = [e for e in events if e["type"] == "PortfolioValued"][-1]
    positions: Counter = Counter()
    for fill in (e for e in events if e["type"] == "FillExecuted"):
        qty = Decimal(fill["quantity"])
        positions[fill["symbol"]] += qty if fill["side"] == "BUY" else -qty
    last_close = {frame.symbols[c]: Decimal(repr(x)) for c, x in
                  zip(frame.symbol_code.tolist(), frame.close.tolist())}
    marked = sum((q * last_close[sym] for sym, q in positions.items()), Decimal(0))
    assert Decimal(final["equity"]) == Decimal(final["cash"]) + marked
    assert by_type["Bar"] == len(frame)
