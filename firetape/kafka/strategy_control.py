"""Where an operator's strategy command took effect on each md.bars partition.

The strategy workers read the whole `control` topic, but a command cannot take effect at
one instant on Kafka: each md.bars partition is evaluated on its own, possibly by another
worker, possibly hours later. So a command takes effect on a partition just before the
next record of that partition a worker evaluates, and the worker records that point as a
`CommandApplied` on `strategy.control` (acknowledged before it evaluates the record). That
record, not the moment the command was read, is the truth from then on: a restart, a
rebalance or a rebuild from a snapshot applies the command before the same md.bars offset
again, whoever does it and whenever.

The command itself travels in the record, so a rebuild reads one topic and does not
depend on `control`'s retention (forever in the registry, but a cluster may set its own).

If two markers for one (partition, control offset) exist (a worker that lost the partition
without knowing it wrote one too), the first on `strategy.control` wins: the topic has one
partition, so "first" is the same for every reader.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from firetape.kafka.wire import Control


class CommandApplied(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """`command` (read at `control_offset` of `control`) took effect on md.bars partition
    `source_partition` just before the record at `source_offset` was evaluated."""

    source_partition: int
    source_offset: int
    control_offset: int
    command: Control


marker_codec = (msgspec.json.Encoder().encode, msgspec.json.Decoder(CommandApplied).decode)


@dataclass
class PartitionMarkers:
    """The markers of one md.bars partition that count (first per control offset), in
    control order."""

    markers: list[CommandApplied] = field(default_factory=list)
    control_offsets: set[int] = field(default_factory=set)

    def add(self, marker: CommandApplied) -> bool:
        """Keep `marker` unless one for its command is already kept; whether it was."""
        if marker.control_offset in self.control_offsets:
            return False
        self.control_offsets.add(marker.control_offset)
        self.markers.append(marker)
        self.markers.sort(key=lambda m: m.control_offset)
        return True

    def last_control_offset(self) -> int:
        """The control offset of the last command recorded for the partition, or -1."""
        return self.markers[-1].control_offset if self.markers else -1

    def due(self, applied: int, before: int) -> list[CommandApplied]:
        """The markers after control offset `applied` that take effect before md.bars
        offset `before` (inclusive), in control order; stops at the first one that is
        not due yet, so commands are never applied out of order."""
        out = []
        for marker in self.markers:
            if marker.control_offset <= applied:
                continue
            if marker.source_offset > before:
                break
            out.append(marker)
        return out
