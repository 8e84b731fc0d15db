"""A session: the embedded runtime fed from a BarFrame, recorded in a run directory.

A run directory holds everything needed to replay it anywhere:

    run.json   run id, config (as validated), strategies, data sources and their digest,
               counts, topic digests, whether the session completed
    log/       the event log, every topic-partition

The run id is derived from the config and the data (not from the clock), so the same
backtest twice has the same run id, the same events and the same digests.
"""
from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import structlog

from connectors.files.frame import BarFrame
from firetape import __version__
from firetape.config import FiretapeConfig, settings_of, to_builtins
from firetape.eventlog import EventLog
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.feed import bar_events, in_replay_order
from firetape.runtime.pipeline import build_stages

logger = structlog.get_logger("firetape.session")

RUN_FILE = "run.json"
LOG_DIR = "log"
PROGRESS_EVERY = 4096


def data_digest(frame: BarFrame) -> str:
    """SHA-256 over the frame's content (symbols and every column)."""
    h = hashlib.sha256()
    h.update("\0".join(frame.symbols).encode())
    for column in (frame.ts, frame.symbol_code, frame.open, frame.high, frame.low,
                   frame.close, frame.volume):
        h.update(column.tobytes())
    return h.hexdigest()


def make_run_id(config: FiretapeConfig, digest: str, mode: str) -> str:
    """16 hex characters from the config's non-default settings, the data digest and the
    mode."""
    payload = msgspec.json.encode({"config": settings_of(config), "data": digest,
                                   "mode": mode})
    return hashlib.sha256(payload).hexdigest()[:16]


def new_run_dir(root: Path, run_id: str) -> Path:
    """runs/<UTC time>-<run id>, never reusing an existing directory."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(root) / f"{stamp}-{run_id}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


@dataclass
class SessionResult:
    run_id: str
    run_dir: Path
    bars: int
    seconds: float
    counts: dict[str, int]
    digests: dict[str, str]
    dead_letters: int
    completed: bool
    meta: dict = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else 0.0


class StopFlag:
    """Set by Ctrl-C (SIGINT) or SIGTERM; the feed checks it between bars so that every
    bar taken in is fully processed and the log stays consistent."""

    def __init__(self) -> None:
        self.set = False
        self.signal_name = ""

    def __call__(self, signum, frame) -> None:
        self.set = True
        self.signal_name = signal.Signals(signum).name

    def install(self) -> Callable[[], None]:
        """Install for SIGINT/SIGTERM; returns a function restoring the old handlers."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]


def write_meta(run_dir: Path, meta: dict) -> None:
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    tmp.replace(run_dir / RUN_FILE)   # atomic: a crash never leaves half a run.json


def read_meta(run_dir: Path) -> dict:
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no {RUN_FILE})")
    return json.loads(path.read_text())


def run_session(frame: BarFrame, config: FiretapeConfig, runs_root: Path, *,
                mode: str = "backtest", speed: float | None = None,
                on_progress: Callable[[int], None] | None = None,
                stop: StopFlag | None = None, sources: tuple[str, ...] = (),
                audit: bool = True) -> SessionResult:
    """Run `frame` through the pipeline and record it in a new run directory.

    `speed` None replays as fast as possible; otherwise event time runs `speed` times
    faster than wall time (1.0 is real time). `on_progress(n)` is called every few
    thousand bars with the number of bars done.
    """
    digest = data_digest(frame)
    run_id = make_run_id(config, digest, mode)
    run_dir = new_run_dir(runs_root, run_id)
    meta = {
        "run_id": run_id, "mode": mode, "firetape_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": to_builtins(config), "strategies": list(config.run.strategies),
        "data": {"sources": list(sources or frame.sources), "digest": digest,
                 "bars": len(frame), "symbols": list(frame.symbols)},
        "completed": False,
    }
    write_meta(run_dir, meta)
    logger.info("session.started", run_id=run_id, run_dir=str(run_dir), mode=mode,
             bars=len(frame), symbols=len(frame.symbols), speed=speed or "max")
    ordered = in_replay_order(frame)
    stop = stop or StopFlag()
    with EventLog(run_dir / LOG_DIR, mode="a") as log:
        bus = EmbeddedBus(build_stages(config, run_id), log, run_id)
        started, cpu_started = time.perf_counter(), time.process_time()
        done = _feed(bus, bar_events(ordered, run_id), ordered, speed, on_progress, stop)
        bus.finish()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        log.flush()
        digests = log.digests()
    meta.update(completed=not stop.set, stopped_by=stop.signal_name or None, bars_processed=done,
                counts=bus.counts(), digests=digests, dead_letters=bus.dead_letters,
                seconds=round(seconds, 3))
    write_meta(run_dir, meta)
    logger.info("session.finished", run_id=run_id, bars=done, seconds=round(seconds, 3),
             completed=not stop.set, dead_letters=bus.dead_letters)
    if audit:   # the run's audit: a chdb database in run_dir/"audit", built from log/
        from firetape.audit.run_audit import write_run_audit
        write_run_audit(run_dir)
    return SessionResult(run_id, run_dir, done, seconds, bus.counts(), digests,
                         bus.dead_letters, not stop.set, meta, cpu_seconds)


def _feed(bus: EmbeddedBus, events, frame: BarFrame, speed, on_progress, stop) -> int:
    publish = bus.publish
    done = 0
    if speed is None:
        for event in events:
            publish(event)
            done += 1
            if not done % PROGRESS_EVERY:
                if on_progress:
                    on_progress(done)
                if stop.set:
                    break
    else:
        wall0 = time.monotonic()
        ts0 = int(frame.ts[0]) if len(frame) else 0
        for event in events:
            delay = wall0 + (event.ts_event - ts0) / 1e9 / speed - time.monotonic()
            while delay > 0 and not stop.set:
                time.sleep(min(delay, 0.2))   # short naps so Ctrl-C is honoured quickly
                delay = wall0 + (event.ts_event - ts0) / 1e9 / speed - time.monotonic()
            if stop.set:
                break
            publish(event)
            done += 1
            if on_progress and not done % 64:
                on_progress(done)
    if on_progress:
        on_progress(done)
    return done
