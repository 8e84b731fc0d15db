"""The report end to end on a crafted run: frames, per-hop latency, chart, summary, tables."""
import json
import math
from decimal import Decimal
from types import SimpleNamespace

import pytest
from rich.console import Console

import schemas as s
from firetape.report.chart import plot_equity
from firetape.report.frames import frames_from_events, load_frames
from firetape.report.latency import END_TO_END, HOPS, hop_latencies, latency_summary
from firetape.report.render import build_summary, render_report
from tests.factories import ACCOUNT, DAY, T0, bar, header
from topics import codec, topic_of

US = 1_000          # ns per microsecond
WALL0 = 1_800_000_000_000_000_000


def _signal(of: s.Bar, strategy: str = "trend") -> s.SignalGenerated:
    return s.SignalGenerated(**header(of.ts_event, "strategy", cause=of.event_id,
                                      correlation=of.correlation_id),
                             strategy=strategy, symbol=of.symbol, direction=1, confidence=1.0,
                             price=of.close)


def _request(of: s.SignalGenerated, side: str, quantity: str) -> s.SubmitOrder:
    h = header(of.ts_event, "allocator", cause=of.event_id, correlation=of.correlation_id)
    return s.SubmitOrder(**h, client_order_id=f"c-{h['event_id']}", account=ACCOUNT,
                         strategy=of.strategy, symbol=of.symbol, side=side,
                         quantity=Decimal(quantity), ref_price=of.price)


def _decision(of: s.SubmitOrder, reasons: tuple[str, ...] = ()):
    terms = dict(**header(of.ts_event, "risk", cause=of.event_id, correlation=of.correlation_id),
                 client_order_id=of.client_order_id, account=ACCOUNT, strategy=of.strategy,
                 symbol=of.symbol, side=of.side, quantity=of.quantity, trading_state="ACTIVE",
                 checks=tuple(s.CheckResult(name, False, "1", "0", name) for name in reasons))
    if reasons:
        return s.OrderDenied(**terms, reasons=reasons)
    return s.OrderApproved(**terms)


def _update(kind, of: s.SubmitOrder):
    extra = {"broker_order_id": "b-1"} if kind is s.OrderAccepted else {}
    return kind(**header(of.ts_event, "execution", cause=of.event_id,
                         correlation=of.correlation_id),
                client_order_id=of.client_order_id, account=ACCOUNT, symbol=of.symbol, **extra)


def _fill(of: s.SubmitOrder, quantity: str, price: str, leaves: str) -> s.FillExecuted:
    h = header(of.ts_event, "execution", cause=of.event_id, correlation=of.correlation_id)
    return s.FillExecuted(**h, fill_id=f"f-{h['event_id']}", client_order_id=of.client_order_id,
                          broker_order_id="b-1", account=ACCOUNT, strategy=of.strategy,
                          symbol=of.symbol, side=of.side, quantity=Decimal(quantity),
                          price=Decimal(price), commission=Decimal("1"),
                          leaves_quantity=Decimal(leaves))


def _valued(ts: int, equity: str, drawdown: str = "0") -> s.PortfolioValued:
    return s.PortfolioValued(**header(ts, "portfolio"), account=ACCOUNT, cash=Decimal(equity),
                             equity=Decimal(equity), gross_exposure=Decimal(0),
                             net_exposure=Decimal(0), realized_pnl=Decimal(0),
                             unrealized_pnl=Decimal(0), commissions=Decimal(0),
                             high_water_mark=Decimal(equity), drawdown=Decimal(drawdown))


def crafted_run() -> list[tuple[str, s.Event, int]]:
    """Two orders: one bought in two fills at known wall times, one denied; then a sale.

    Wall clock (µs after WALL0) of the bought order: bar 0, signal 100, request 150,
    decision 400, submitted 500, accepted 900, fills 1900 and 2900.
    """
    bar0, bar1 = bar("AAA", T0, close=100.0), bar("AAA", T0 + DAY, close=110.0)
    signal = _signal(bar0)
    buy = _request(signal, "BUY", "10")
    denied = _request(signal, "BUY", "1000")
    later_signal = _signal(bar1)
    sell = _request(later_signal, "SELL", "10")
    timeline = [
        (bar0, 0), (signal, 100), (buy, 150), (denied, 160), (_decision(buy), 400),
        (_decision(denied, ("max_gross_exposure", "max_order_notional")), 420),
        (_update(s.OrderSubmitted, buy), 500), (_update(s.OrderAccepted, buy), 900),
        (_fill(buy, "4", "100", "6"), 1_900), (_fill(buy, "6", "100", "0"), 2_900),
        (_valued(T0, "100000"), 3_000),
        (bar1, 10_000), (later_signal, 10_200), (sell, 10_300), (_decision(sell), 10_500),
        (_update(s.OrderSubmitted, sell), 10_600), (_update(s.OrderAccepted, sell), 10_700),
        (_fill(sell, "10", "110", "0"), 10_800), (_valued(T0 + DAY, "100098"), 11_000),
    ]
    return [(topic_of(type(e)), e, WALL0 + us * US) for e, us in timeline]


def test_hop_latencies_when_order_fills_in_two_parts_then_each_hop_in_microseconds():
    frames = frames_from_events(crafted_run())

    hops = hop_latencies(frames)

    bought = hops.iloc[0]
    assert bought[list(HOPS)].tolist() == [100.0, 50.0, 250.0, 100.0, 400.0, 1_000.0, 1_000.0]
    assert bought[END_TO_END] == 2_900.0
    assert bool(bought["approved"]) is True


def test_hop_latencies_when_order_denied_then_post_decision_hops_are_missing():
    hops = hop_latencies(frames_from_events(crafted_run()))

    denied = hops.iloc[1]
    assert bool(denied["approved"]) is False
    assert denied["request_to_decision"] == 260.0
    assert math.isnan(denied["decision_to_submitted"])
    assert math.isnan(denied[END_TO_END])


def test_latency_summary_when_hops_missing_then_skipped_in_counts_and_percentiles():
    summary = latency_summary(hop_latencies(frames_from_events(crafted_run())))

    assert summary.loc["request_to_decision", "count"] == 3
    assert summary.loc["decision_to_submitted", "count"] == 2     # the denial has none
    assert summary.loc["accepted_to_first_fill", "max"] == 1_000.0
    assert summary.loc[END_TO_END, "p50"] == pytest.approx((2_900 + 800) / 2)


def test_plot_equity_when_valuations_given_then_writes_a_png(tmp_path):
    frames = frames_from_events(crafted_run())

    path = plot_equity(frames.valuations, tmp_path / "charts" / "equity.png", "crafted run")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_equity_when_no_valuations_then_still_writes_a_png(tmp_path):
    frames = frames_from_events([])

    path = plot_equity(frames.valuations, tmp_path / "empty.png", "empty run")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_summary_when_run_crafted_then_counts_equity_and_json_round_trip():
    summary = build_summary(frames_from_events(crafted_run()), initial_equity=100_000.0)

    counts = summary["counts"]
    assert (counts["bars"], counts["signals"], counts["orders"]) == (2, 2, 3)
    assert (counts["approved"], counts["denied"], counts["fills"]) == (2, 1, 3)
    assert counts["denied_by_reason"] == {"max_gross_exposure": 1, "max_order_notional": 1}
    assert counts["round_trips"] == 1
    assert summary["final_equity"] == 100_098.0
    assert summary["metrics"]["total_return"] == pytest.approx(0.00098)
    # The sleeve bought 10 at 100 and sold at 110, paying 3 in commissions.
    assert summary["strategies"]["trend"]["pnl"] == pytest.approx(97.0)
    assert summary["latency_us"][END_TO_END]["count"] == 2
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_render_report_when_summary_printed_then_key_numbers_and_labels_appear():
    summary = build_summary(frames_from_events(crafted_run()), initial_equity=100_000.0)
    console = Console(record=True, width=160)

    render_report(summary, console)

    text = console.export_text()
    assert "Total return" in text and "0.10 %" in text
    assert "100,098.00" in text
    assert "denied: max_gross_exposure" in text
    assert "accepted → first fill" in text and "1.000" in text    # 1000 µs
    assert "end to end" in text and "2.900" in text               # max bar -> last fill
    assert "trend" in text


def test_load_frames_when_reading_a_log_then_same_frames_as_from_decoded_events():
    run = crafted_run()
    records_of: dict[str, list] = {}
    for topic, event, wall in run:
        records_of.setdefault(topic, []).append(
            SimpleNamespace(value=codec(topic).encode(event), ts_wall=wall))
    log = SimpleNamespace(read=lambda topic, partition=None: iter(records_of.get(topic, [])))

    loaded, decoded = load_frames(log), frames_from_events(run)

    assert loaded.bars.to_dict("list") == decoded.bars.to_dict("list")
    assert loaded.fills.to_dict("list") == decoded.fills.to_dict("list")
    assert loaded.decisions["reasons"].tolist() == ["", "max_gross_exposure; max_order_notional",
                                                    ""]


def test_build_summary_when_run_is_empty_then_zero_counts_and_undefined_ratios_render():
    summary = build_summary(frames_from_events([]), initial_equity=1_000.0)
    console = Console(record=True, width=160)

    render_report(summary, console)

    assert summary["final_equity"] == 1_000.0
    assert summary["counts"]["orders"] == 0
    assert summary["metrics"]["sharpe"] is None
    assert summary["latency_us"][END_TO_END]["count"] == 0
    assert "n/a" in console.export_text()
