"""`firetape agent NAME`, `firetape agents` and `firetape publish`: the Kafka runtime's
commands, attached to the main CLI by firetape.cli. Every option also has an environment
variable (containers set only those); faust and aiokafka load only when a command runs.
"""
from __future__ import annotations

import asyncio
import sys

import click

from firetape.kafka import options

_COMMON = [
    options.config,
    options.prefix,
    options.bootstrap,
    click.option("--run-id", envvar="FIRETAPE_RUN_ID", default=None,
                 help="Run id (FIRETAPE_RUN_ID); agents default to the inputs' run id."),
]


def _common(func):
    for option in reversed(_COMMON):
        func = option(func)
    return func


def _settings(config_path, prefix, bootstrap, run_id, **more):
    from firetape.config import ConfigError, load_config
    from firetape.kafka.settings import SettingsError, from_env

    try:
        settings = from_env().with_overrides(config_path=config_path, prefix=prefix,
                                             bootstrap=bootstrap, run_id=run_id, **more)
        config = load_config(settings.config_path)
    except (SettingsError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    return settings, config


def _run(names: tuple[str, ...], settings, config) -> None:
    from firetape.kafka.app import create_app, run_worker
    from firetape.kafka.clients import ensure_topics

    asyncio.run(ensure_topics(settings))    # before faust subscribes to them
    run_worker(create_app(settings, config, names), settings)


@click.command("agent")
@click.argument("name")
@_common
@click.option("--web-port", envvar="FIRETAPE_WEB_PORT", type=int, default=None,
              help="Port of the /health endpoint (FIRETAPE_WEB_PORT); 0 turns it off.")
def agent(name, config_path, prefix, bootstrap, run_id, web_port):
    """Run one agent as a faust worker: feed, strategy, account (risk, execution,
    portfolio and allocator run inside account) or audit."""
    from firetape.kafka.app import agent_name

    try:
        agent_name(name)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    settings, config = _settings(config_path, prefix, bootstrap, run_id,
                                 web_port=web_port)
    _run((name,), settings, config)


@click.command("agents")
@_common
@click.option("--web-port", envvar="FIRETAPE_WEB_PORT", type=int, default=None)
@click.option("--audit/--no-audit", default=True, show_default=True,
              help="Also run the audit agent (ClickHouse at CLICKHOUSE_URL, else chdb in "
              "FIRETAPE_AUDIT_DB).")
def agents(config_path, prefix, bootstrap, run_id, web_port, audit):
    """Run every agent in one faust worker (a laptop's deployment): strategy, account
    (risk, execution, portfolio, allocator), audit, and the feed when FIRETAPE_FEED_DATA
    names a file to publish."""
    import os

    settings, config = _settings(config_path, prefix, bootstrap, run_id,
                                 web_port=web_port)
    names = ("strategy", "account") + (("audit",) if audit else ())
    if os.environ.get("FIRETAPE_FEED_DATA"):
        names += ("feed",)
    _run(names, settings, config)


@click.command("publish")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(),
              help="CSV or Parquet bar file or directory; repeat for more.")
@click.option("--speed", default="max", show_default=True,
              help="max, or a factor of event time such as 60x.")
@_common
def publish(data, speed, config_path, prefix, bootstrap, run_id):
    """Publish bars from files to md.bars (with watermarks), in replay order.

    The run id defaults to the one `firetape backtest` gives the same data and config, so
    the agents' orders and fills carry the ids of the embedded backtest.
    """
    from connectors.files import BarDataError, load_bars
    from firetape.kafka.admin import TopicAdminError
    from firetape.kafka.feed_task import parse_speed
    from firetape.kafka.publish import backtest_run_id, publish_bars
    from firetape.kafka.settings import SettingsError

    settings, config = _settings(config_path, prefix, bootstrap, run_id)
    try:
        pace = parse_speed(speed)
        frame = load_bars(list(data))
    except (SettingsError, BarDataError, FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    run = settings.run_id or backtest_run_id(config, frame)
    try:
        result = asyncio.run(publish_bars(settings, frame, run, speed=pace))
    except TopicAdminError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"published {result.bars} bars ({result.times} times) to "
               f"{settings.prefix}md.bars on {settings.bootstrap} as run {run} "
               f"in {result.seconds:.2f} s")


@click.command("replay-kafka")
@click.option("--from-kafka", "topic", required=True,
              help="The market-data topic to read, with its namespace (e.g. md.bars).")
@options.range_options
def replay_kafka(topic, start, end, into_kafka, config_path, bootstrap, runs, json_path):
    """A deterministic backtest over a range of a Kafka topic: TIME (ISO 8601, UTC) or
    OFFSET bounds, start inclusive, end exclusive; --into-kafka RUN republishes the range
    for the Kafka agents (`firetape agents --prefix RUN.`)."""
    import json
    from pathlib import Path

    from firetape.kafka.replay import Bound, ReplayRangeError, replay_kafka as run_replay

    settings, config = _settings(config_path, None, bootstrap, None)
    try:
        bounds = Bound.parse(start, "start"), Bound.parse(end, "end")
        done = run_replay(settings.bootstrap, topic, *bounds, config, Path(runs),
                          into_kafka=into_kafka)
    except ReplayRangeError as error:
        raise click.ClickException(str(error)) from None
    result, taken = done.result, done.range
    click.echo(f"read {taken.records} records of {topic} ({taken.undecodable} undecodable), "
               f"{result.bars} bars of {len(taken.frame.symbols)} symbols")
    click.echo(f"run {result.run_id} in {result.run_dir}")
    width = max(len(t) for t in result.digests) if result.digests else 5
    click.echo(f"{'topic':<{width}}  {'events':>7}  digest")
    for name in sorted(result.digests):
        click.echo(f"{name:<{width}}  {result.counts.get(name, 0):>7}  {result.digests[name]}")
    if done.republished:
        click.echo(f"republished {done.republished_bars} bars to {done.republished}md.bars "
                   f"as run {result.run_id}: firetape agents --prefix {done.republished}")
    if json_path:
        Path(json_path).write_text(json.dumps({
            "topic": topic, "records": taken.records, "undecodable": taken.undecodable,
            "partitions": {str(p): list(span) for p, span in taken.partitions.items()},
            "run_id": result.run_id, "run_dir": str(result.run_dir), "bars": result.bars,
            "counts": result.counts, "digests": result.digests,
            "republished": done.republished}, indent=2))


@click.group("firetape-agents")
def standalone() -> None:
    """These commands on their own (the main CLI attaches them too)."""


standalone.add_command(agent)
standalone.add_command(agents)
standalone.add_command(publish)
standalone.add_command(replay_kafka)

if __name__ == "__main__":
    sys.exit(standalone())
