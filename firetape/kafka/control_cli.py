"""`firetape control disable-strategy|enable-strategy|strategy-points`: operator commands
for the strategy workers of the Kafka runtime, attached under `firetape control` by
firetape.cli.

A command is produced to the namespace's `control` topic (keyed by account, as the
registry says); every strategy worker reads it and applies it to each md.bars partition it
owns before that partition's next bar, recording the point on `strategy.control`, which
`strategy-points` prints. The account agent reads the same record and sequences it (it
changes nothing there). Expected failures print one line and exit 1.
"""
from __future__ import annotations

import asyncio
import getpass
import time

import click

_OPTIONS = [
    click.option("--account", default="", show_default=True,
                 help="The account the command is for; empty: every account."),
    click.option("--operator", default=None, help="Who sends it (default: your login)."),
    click.option("--prefix", envvar="FIRETAPE_TOPIC_PREFIX", default=None,
                 help="Topic namespace prefix (FIRETAPE_TOPIC_PREFIX)."),
    click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP", default=None,
                 help="Kafka bootstrap servers (KAFKA_BOOTSTRAP); default: the local broker."),
]


def _options(func):
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def _settings(prefix, bootstrap):
    from firetape.kafka.settings import SettingsError, from_env

    try:
        return from_env().with_overrides(prefix=prefix, bootstrap=bootstrap)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def strategy_command(kind: type, strategy: str, account: str, operator: str, run_id: str,
                     now_ns: int):
    """The command event; its id comes from what it says and when it was given (an outside
    input, recorded with its wall time like every operator command)."""
    from agents.context import Context

    ctx = Context(run_id, "operator", account)
    event_id = ctx.derive_id("operator", kind.__name__, strategy, account, now_ns)
    return kind(event_id=event_id, ts_event=now_ns, ts_init=now_ns, correlation_id=event_id,
                causation_id="", producer="operator", run_id=run_id, strategy=strategy,
                operator=operator, account=account)


async def send_command(settings, event) -> int:
    """Produce `event` to the namespace's control topic; its offset there."""
    from firetape.kafka import clients
    from firetape.kafka.topology import Topology
    from firetape.kafka.wire import headers
    from topics.codec import codec

    await clients.ensure_topics(settings)
    producer = clients.producer(settings)
    await producer.start()
    try:
        sent = await producer.send(Topology(settings.prefix).name("control"),
                                   codec("control").encode(event),
                                   key=getattr(event, "account", "").encode(), partition=0,
                                   headers=headers(type(event).__name__, event.event_id))
        return (await sent).offset
    finally:
        await producer.stop()


def _send(kind: type, strategy, account, operator, prefix, bootstrap) -> None:
    from firetape.kafka.admin import TopicAdminError

    settings = _settings(prefix, bootstrap)
    event = strategy_command(kind, strategy, account, operator or getpass.getuser(),
                             settings.run_id or "operator", time.time_ns())
    try:
        offset = asyncio.run(asyncio.wait_for(send_command(settings, event), 60))
    except TopicAdminError as error:          # names the cluster itself
        raise click.ClickException(str(error)) from None
    except (TimeoutError, OSError) as error:
        raise click.ClickException(f"{settings.bootstrap}: {error}") from None
    click.echo(f"{kind.__name__}({strategy}) sent to {settings.prefix}control@{offset} on "
               f"{settings.bootstrap}; each md.bars partition takes it before its next bar "
               f"(see `firetape control strategy-points`)")


@click.command("disable-strategy")
@click.argument("strategy")
@_options
def disable_strategy(strategy, account, operator, prefix, bootstrap):
    """Stop calling STRATEGY on Kafka (it keeps its state) until enable-strategy."""
    from schemas import StrategyDisabled

    _send(StrategyDisabled, strategy, account, operator, prefix, bootstrap)


@click.command("enable-strategy")
@click.argument("strategy")
@_options
def enable_strategy(strategy, account, operator, prefix, bootstrap):
    """Call STRATEGY again on Kafka, from the next bar of each md.bars partition."""
    from schemas import StrategyEnabled

    _send(StrategyEnabled, strategy, account, operator, prefix, bootstrap)


@click.command("strategy-points")
@click.option("--prefix", envvar="FIRETAPE_TOPIC_PREFIX", default=None,
              help="Topic namespace prefix (FIRETAPE_TOPIC_PREFIX).")
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP", default=None,
              help="Kafka bootstrap servers (KAFKA_BOOTSTRAP); default: the local broker.")
def strategy_points(prefix, bootstrap):
    """Where each strategy command took effect: md.bars partition, the offset of the first
    bar evaluated with it, and the command's control offset (from strategy.control)."""
    from firetape.kafka.readback import read_topic
    from firetape.kafka.strategy_control import marker_codec
    from firetape.kafka.topology import STRATEGY_CONTROL, Topology

    settings = _settings(prefix, bootstrap)
    topic = Topology(settings.prefix).name(STRATEGY_CONTROL)
    try:
        records = asyncio.run(asyncio.wait_for(read_topic(settings.bootstrap, topic), 60))
    except (TimeoutError, OSError) as error:
        raise click.ClickException(f"{settings.bootstrap}: {error}") from None
    seen: set[tuple[int, int]] = set()
    for record in records:
        marker = marker_codec[1](record.value)
        point = (marker.source_partition, marker.control_offset)
        if point in seen:
            continue                # a later marker for the same point does not count
        seen.add(point)
        command = marker.command
        click.echo(f"md.bars[{marker.source_partition}] before offset {marker.source_offset}: "
                   f"{type(command).__name__}({getattr(command, 'strategy', '')}) "
                   f"control@{marker.control_offset} by {getattr(command, 'operator', '')}")
    if not seen:
        click.echo(f"no strategy command has taken effect yet ({topic} is empty)")
