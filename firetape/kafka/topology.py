"""Topic names on a cluster: the registry's topics plus the Kafka runtime's own, all under
an optional namespace prefix (so a test, a replay or a second deployment can share a
cluster without sharing topics).

The internal topics are specs like the registry's: `strategy.evaluated` has exactly the
partitions of md.bars (the strategy agent writes each record to the partition it read it
from, which keeps faust's per-partition transactions and ordering intact), and
`account.sequence` is keyed by account like every topic the account agent writes.
"""
from __future__ import annotations

from dataclasses import dataclass

import msgspec

from firetape.kafka.strategy_control import CommandApplied
from firetape.kafka.wire import Evaluation, Sequenced, Watermark
from topics.registry import REGISTRY, TopicSpec, spec

WATERMARKS = "md.watermarks"
EVALUATED = "strategy.evaluated"
SEQUENCE = "account.sequence"
SNAPSHOTS = "strategy.snapshots"
STRATEGY_CONTROL = "strategy.control"

INTERNAL: tuple[TopicSpec, ...] = (
    TopicSpec(WATERMARKS, "producer", (Watermark,), 1, "delete", -1, "feed", ("account",),
              "the feed's promise that every bar up to a time is on md.bars"),
    TopicSpec(EVALUATED, "symbol", (Evaluation,), spec("md.bars").partitions, "delete", -1,
              "strategy", ("account",), "each md.bars record with the signals it caused"),
    TopicSpec(SEQUENCE, "account", (Sequenced,), spec("order.requests").partitions, "delete",
              -1, "account", ("account",), "the inputs of an account's stages, in run order"),
    TopicSpec(SNAPSHOTS, "partition", (), 1, "compact", -1, "strategy", ("strategy",),
              "the strategy state of an md.bars partition up to an offset (pickled), so a "
              "restart replays only the records after it"),
    # Not compacted: a rebuild from offset 0 needs every marker of its partition.
    TopicSpec(STRATEGY_CONTROL, "partition", (CommandApplied,), 1, "delete", -1, "strategy",
              ("strategy",), "where each strategy command of `control` took effect on each "
              "md.bars partition (the md.bars offset it preceded)"),
)


@dataclass(frozen=True)
class Topology:
    """Where every topic lives on the cluster for one namespace `prefix`."""

    prefix: str = ""

    def name(self, topic: str) -> str:
        """The cluster name of registry or internal topic `topic`."""
        return f"{self.prefix}{topic}"

    def specs(self) -> tuple[TopicSpec, ...]:
        """Every topic (registry and internal) with its cluster name."""
        return tuple(msgspec.structs.replace(t, name=self.name(t.name))
                     for t in REGISTRY + INTERNAL)

    def partitions(self, topic: str) -> int:
        """Partition count of registry or internal topic `topic`."""
        for t in REGISTRY + INTERNAL:
            if t.name == topic:
                return t.partitions
        raise KeyError(topic)
