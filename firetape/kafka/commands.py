"""Operator commands on Kafka: produced to the namespace's `control` topic, and where the
strategy workers applied theirs (`strategy.control`). The CLI is firetape/control_cli.py.

A command is keyed by its account (as the registry says) on the topic's one partition,
so every agent reads all commands in one order. The account agent sequences each one;
every strategy worker applies a strategy command to each md.bars partition it owns
before that partition's next bar and records the point (see strategy_control.py).
"""
from __future__ import annotations

from firetape.kafka.settings import AgentSettings


async def send_command(settings: AgentSettings, event) -> int:
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


async def strategy_points(settings: AgentSettings) -> list[str]:
    """One line per point where a strategy command took effect, as recorded on
    strategy.control (the first marker for a partition and command stands)."""
    from firetape.kafka.readback import read_topic
    from firetape.kafka.strategy_control import marker_codec
    from firetape.kafka.topology import STRATEGY_CONTROL, Topology

    topic = Topology(settings.prefix).name(STRATEGY_CONTROL)
    lines: list[str] = []
    seen: set[tuple[int, int]] = set()
    for record in await read_topic(settings.bootstrap, topic):
        marker = marker_codec[1](record.value)
        point = (marker.source_partition, marker.control_offset)
        if point in seen:
            continue                # a later marker for the same point does not count
        seen.add(point)
        command = marker.command
        lines.append(f"md.bars[{marker.source_partition}] before offset "
                     f"{marker.source_offset}: {type(command).__name__}"
                     f"({getattr(command, 'strategy', '')}) control@{marker.control_offset} "
                     f"by {getattr(command, 'operator', '')}")
    return lines or [f"no strategy command has taken effect yet ({topic} is empty)"]
