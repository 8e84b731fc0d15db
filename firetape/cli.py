"""The `firetape` command line. Each command is a thin shell over a library call; expected
failures (bad data, bad config, a run that does not replay) end with a clear message and
a non-zero exit, never a traceback."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from firetape.config import ConfigError, load_config, with_strategies
from firetape.kafka import options as kafka_options

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "data" / "sample" / "bars.csv"
DEMO_CONFIG = REPO / "config" / "demo.toml"

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> None:
    # escaped: a message may hold brackets (a partition "md.bars[3]") that rich would eat
    errors.print(f"[bold red]error:[/] {escape(message)}")
    raise SystemExit(code)


def parse_speed(text: str) -> float | None:
    """'max' -> None (as fast as possible); 'realtime' -> 1.0; '60x' or '60' -> 60.0."""
    text = text.strip().lower()
    if text == "max":
        return None
    if text in ("realtime", "real", "1x"):
        return 1.0
    try:
        value = float(text.removesuffix("x"))
    except ValueError:
        raise click.BadParameter("use max, realtime or a factor such as 60x") from None
    if value <= 0:
        raise click.BadParameter("the speed factor must be positive")
    return value


class PluggedGroup(click.Group):
    """A group whose commands from other packages (PLUGGED_COMMANDS) are imported only
    when one of them is run or listed: `firetape audit latency` then does not import
    Kafka's or Alpaca's client libraries first (~0.15 s of every command's start)."""

    def _plugged(self) -> dict[str, tuple[str, str]]:
        return {name: (module, attribute) for module, attribute, parent, name
                in PLUGGED_COMMANDS if parent == self.name}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._plugged()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None or name not in self._plugged():
            return command
        import importlib

        module_name, attribute = self._plugged()[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # An optional part that is not installed: the command is simply absent.
            if exc.name and module_name.startswith(exc.name):
                return None
            raise
        return getattr(module, attribute)


@click.group(cls=PluggedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="firetape")
def main() -> None:
    """firetape: an event-sourced trading pipeline with deterministic replay."""


def _load(config_path, strategy):
    from firetape.logs import configure_logging

    try:
        config = load_config(config_path)
        if strategy:
            names = [s.strip() for s in strategy.split(",") if s.strip()]
            config = with_strategies(config, names)
            from firetape.config import validate_strategies

            validate_strategies(config, "--strategy")
    except ConfigError as exc:
        fail(str(exc))
    configure_logging(config.log.level, config.log.format)
    return config


def _frame(paths):
    from connectors.files import BarDataError, load_bars

    try:
        frame = load_bars(list(paths))
    except (BarDataError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if len(frame) == 0:
        fail(f"no bars in {', '.join(map(str, paths))}")
    return frame


def _session(frame, config, runs, mode, speed, quiet, sources, audit=True):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeRemainingColumn

    from firetape.runtime.session import StopFlag, run_session

    stop = StopFlag()
    restore = stop.install()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("bars"), TimeRemainingColumn(),
                        console=errors, disable=quiet, transient=False)
    try:
        with progress:
            task = progress.add_task(mode, total=len(frame))
            result = run_session(frame, config, Path(runs), mode=mode, speed=speed,
                                 on_progress=lambda n: progress.update(task, completed=n),
                                 stop=stop, sources=sources, audit=audit)
    finally:
        restore()
    return result


def _report(result, config, quiet, json_path):
    from firetape.eventlog import EventLog
    from firetape.report import build_summary, load_frames, plot_equity, render_report

    with EventLog(result.run_dir / "log", mode="r") as log:
        frames = load_frames(log)
    summary = build_summary(frames, float(config.portfolio.initial_cash))
    chart = plot_equity(frames.valuations, result.run_dir / "equity.png",
                        f"firetape {result.run_id}")
    counts = summary["counts"]
    summary.update({key: counts[key] for key in ("signals", "orders", "fills", "round_trips")})
    summary.update(run_id=result.run_id, run_dir=str(result.run_dir), bars=result.bars,
                   digests=result.digests, bars_per_second=round(result.bars_per_second, 1),
                   seconds=round(result.seconds, 3), completed=result.completed,
                   dead_letters=result.dead_letters, chart=str(chart))
    (result.run_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2, default=str))
    if not quiet:
        render_report(summary, console)
        console.print(f"\nrun id   {result.run_id}")
        console.print(f"run dir  {result.run_dir}")
        console.print(f"chart    {chart}")
        console.print(f"speed    {result.bars:,} bars in {result.seconds:.2f} s = "
                      f"{result.bars_per_second:,.0f} bars/s")
        console.print("digests (SHA-256 of each topic's records):")
        for topic, digest in sorted(result.digests.items()):
            console.print(f"  {topic:<15} {digest}", soft_wrap=True)
    if result.dead_letters:
        errors.print(f"[yellow]warning:[/] {result.dead_letters} event(s) went to the "
                     f"dead-letter topic; see `firetape log inspect {result.run_dir} --topic dlq`")
    return summary


@main.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(),
              help="CSV or Parquet file or directory; repeat for more.")
@click.option("--strategy", help="Comma-separated strategies, e.g. sma_cross,momentum.")
@click.option("--config", "config_path", type=click.Path(), help="firetape.toml")
@click.option("--json", "json_path", type=click.Path(), help="Write a JSON summary here.")
@click.option("--runs", default="runs", show_default=True, help="Where run directories go.")
@click.option("--quiet", is_flag=True, help="No progress bar and no report on stdout.")
@click.option("--no-audit", is_flag=True, help="Skip writing the run's ClickHouse audit.")
def backtest(data, strategy, config_path, json_path, runs, quiet, no_audit):
    """Replay bars from files through the whole pipeline as fast as possible."""
    config = _load(config_path, strategy)
    frame = _frame(data)
    result = _session(frame, config, runs, "backtest", None, quiet, tuple(map(str, data)),
                      audit=not no_audit)
    _report(result, config, quiet, json_path)


@main.command()
@click.option("--data", "data", multiple=True, type=click.Path(),
              help="CSV or Parquet file or directory (--feed files); repeat for more.")
@click.option("--speed", default="realtime", show_default=True,
              help="max, realtime, or a factor of event time, e.g. 60x.")
@click.option("--strategy", help="Comma-separated strategies.")
@click.option("--config", "config_path", type=click.Path())
@click.option("--json", "json_path", type=click.Path())
@click.option("--runs", default="runs", show_default=True)
@click.option("--quiet", is_flag=True)
@click.option("--no-audit", is_flag=True, help="Skip writing the run's ClickHouse audit.")
@click.option("--feed", default="files", show_default=True,
              type=click.Choice(["files", "alpaca"]),
              help="files: bars from --data; alpaca: live bars from Alpaca's stream.")
@click.option("--broker", default="paper", show_default=True,
              type=click.Choice(["paper", "alpaca-paper", "alpaca-live"]),
              help="Where approved orders go: the simulated paper broker or Alpaca.")
@click.option("--live", "live_flag", is_flag=True,
              help="Trade real money: needs --broker alpaca-live and alpaca.account_type = "
                   "\"live\" too.")
@click.option("--symbols", help="Comma-separated symbols for --feed alpaca, e.g. AAPL,MSFT.")
@click.option("--carry-from", "carry_from", type=click.Path(file_okay=False),
              help="--feed alpaca: continue from this live run's final state (default: the "
                   "newest live run of the account under --runs).")
@click.option("--fresh", is_flag=True,
              help="--feed alpaca: start flat, carrying nothing over from an earlier run.")
def run(data, speed, strategy, config_path, json_path, runs, quiet, no_audit, feed, broker,
        live_flag, symbols, carry_from, fresh):
    """A paper-trading session fed from a file at a given speed, or a live session on
    Alpaca (--feed alpaca --broker alpaca-paper); Ctrl-C stops cleanly."""
    if feed == "alpaca" or broker != "paper" or live_flag:
        from firetape.live_cli import run_live_command

        run_live_command(feed, broker, live_flag, symbols, data, strategy, config_path, runs,
                         quiet, no_audit, carry_from=carry_from, fresh=fresh)
        return
    if carry_from or fresh:
        raise click.UsageError("--carry-from and --fresh are for --feed alpaca")
    if not data:
        raise click.UsageError("Missing option '--data'.")
    pace = parse_speed(speed)
    config = _load(config_path, strategy)
    frame = _frame(data)
    result = _session(frame, config, runs, "paper", pace, quiet, tuple(map(str, data)),
                      audit=not no_audit)
    if not result.completed:
        errors.print(f"stopped by {result.meta.get('stopped_by')} after {result.bars:,} bars; "
                     f"the log is consistent and replayable: firetape replay {result.run_dir}")
    _report(result, config, quiet, json_path)


@main.command()
@click.option("--runs", default="runs", show_default=True)
@click.option("--json", "json_path", type=click.Path())
@click.option("--quiet", is_flag=True)
def demo(runs, json_path, quiet):
    """The bundled sample through three strategies, risk, the paper broker and portfolio."""
    config = _load(DEMO_CONFIG, None)
    frame = _frame([SAMPLE_DATA])
    result = _session(frame, config, runs, "backtest", None, quiet, (str(SAMPLE_DATA),))
    _report(result, config, quiet, json_path)
    if not quiet:
        console.print(f"\nreplay it:  firetape replay {result.run_dir}")


@main.command()
@click.argument("run_dir", type=click.Path(), required=False)
@click.option("--keep", type=click.Path(), help="Keep the replayed log in this directory.")
@click.option("--from-kafka", "topic", default=None, metavar="TOPIC",
              help="Instead of a run: backtest a range of this Kafka topic (e.g. md.bars); "
              "the options below are for it (same as `firetape replay-kafka`).")
@kafka_options.range_options
@click.pass_context
def replay(ctx, run_dir, keep, topic, start, end, into_kafka, config_path, bootstrap, runs,
           json_path):
    """Replay a run's recorded market data and compare every topic byte for byte; or, with
    --from-kafka TOPIC --start T --end T, backtest a range of a Kafka topic."""
    if topic is not None:
        if run_dir is not None or keep is not None:
            fail("give either RUN_DIR or --from-kafka TOPIC, not both")
        from firetape.kafka.agents_cli import replay_kafka

        ctx.invoke(replay_kafka, topic=topic, start=start, end=end, into_kafka=into_kafka,
                   config_path=config_path, bootstrap=bootstrap, runs=runs,
                   json_path=json_path)
        return
    if run_dir is None:
        fail("missing RUN_DIR (a run directory to replay), or --from-kafka TOPIC")
    if any(v is not None for v in (start, end, into_kafka, json_path)):
        fail("--start, --end, --into-kafka and --json go with --from-kafka")
    from rich.table import Table

    from firetape.runtime.replay import replay_run

    try:
        result = replay_run(run_dir, Path(keep) if keep else None)
    except (FileNotFoundError, ConfigError) as exc:
        fail(str(exc))
    table = Table(title=f"replay of {result.run_id} ({result.bars:,} bars)")
    for column in ("topic", "original", "replayed", "match"):
        table.add_column(column)
    for t in result.topics:
        table.add_row(t.topic, (t.original or "-")[:16], (t.replayed or "-")[:16],
                      "[green]yes[/]" if t.match else "[red]NO[/]")
    console.print(table)
    if not result.identical:
        fail("the replay differs from the original", code=1)
    console.print("[green]identical:[/] every topic matches byte for byte")


@main.group()
def log():
    """Look into a run's event log."""


@log.command("inspect")
@click.argument("run_dir", type=click.Path())
@click.option("--topic", help="Only this topic (default: a summary of every topic).")
@click.option("--tail", type=int, help="Only the last N records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
def log_inspect(run_dir, topic, tail, as_json):
    """Show events readably (or a per-topic summary without --topic)."""
    from firetape.inspect import inspect_log

    try:
        inspect_log(Path(run_dir), topic, tail, as_json, console)
    except (FileNotFoundError, KeyError) as exc:
        fail(str(exc).strip("'\""))


@main.group(cls=PluggedGroup, invoke_without_command=True)
@click.pass_context
def topics(ctx):
    """The topic registry (and, on Kafka, create/check)."""
    if ctx.invoked_subcommand is None:
        from firetape.inspect import print_registry

        print_registry(console)


@main.command()
@click.option("--symbols", default=10, show_default=True)
@click.option("--bars", default=390, show_default=True, help="Bars per symbol.")
@click.option("--interval", default="1min", show_default=True, type=click.Choice(["1min", "1d"]))
@click.option("--seed", default=7, show_default=True)
@click.option("--out", required=True, type=click.Path(), help=".csv or .parquet")
def generate(symbols, bars, interval, seed, out):
    """Write a seeded synthetic GBM data set (long format)."""
    from connectors.synthetic import generate_bars, round_prices, write_bars

    # cents, like real bars (and a realistic cost to encode)
    frame = round_prices(generate_bars(symbols, bars, seed=seed, interval=interval))
    write_bars(frame, Path(out))
    console.print(f"wrote {len(frame):,} bars of {len(frame.symbols)} symbols to {out}")


# Commands that live beside the code they drive: (module, attribute, parent group, name).
# A module that does not exist yet is simply not attached; any other import error is a bug
# and is raised.
PLUGGED_COMMANDS = (
    ("firetape.kafka.cli", "kafka", "main", "kafka"),
    ("firetape.kafka.cli", "topics_create", "topics", "create"),
    ("firetape.kafka.cli", "topics_check", "topics", "check"),
    ("firetape.kafka.agents_cli", "agent", "main", "agent"),
    ("firetape.kafka.agents_cli", "agents", "main", "agents"),
    ("firetape.kafka.agents_cli", "publish", "main", "publish"),
    ("firetape.kafka.agents_cli", "replay_kafka", "main", "replay-kafka"),
    ("firetape.audit.cli", "audit", "main", "audit"),
    ("connectors.alpaca.cli", "fetch", "main", "fetch"),
    ("firetape.control_cli", "control", "main", "control"),
)


if __name__ == "__main__":
    sys.exit(main())
