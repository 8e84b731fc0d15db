"""The run report, computed from the event log: frames, round trips, metrics, per-hop
latency, the equity chart and the rendered tables."""
from firetape.report.chart import plot_equity
from firetape.report.frames import RunFrames, frames_from_events, load_frames
from firetape.report.latency import hop_latencies, latency_summary
from firetape.report.metrics import equity_curve, performance, strategy_pnl_curves
from firetape.report.render import build_summary, render_report
from firetape.report.roundtrips import round_trips

__all__ = [
    "RunFrames", "build_summary", "equity_curve", "frames_from_events", "hop_latencies",
    "latency_summary", "load_frames", "performance", "plot_equity", "render_report",
    "round_trips", "strategy_pnl_curves",
]
