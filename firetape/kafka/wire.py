"""What travels on Kafka besides the registry's events: record headers, and the three
internal records of the Kafka runtime (feed watermarks, strategy evaluations, the account
sequence).

Every value is JSON from msgspec with its type in a `type` field, and every record also
carries the type and event id as headers, so `kcat -f '%h %s'` shows what a record is
without firetape's code.
"""
from __future__ import annotations

from typing import Union

import msgspec

from schemas.market import Bar
from schemas.signals import SignalGenerated, StrategyFailed
from topics.registry import spec

TYPE_HEADER = "type"
EVENT_ID_HEADER = "event_id"
_TYPE_PREFIX = b'{"type":"'


def event_type(value: bytes) -> str:
    """The type of an encoded event, read from its first field.

    msgspec writes the tag field first, so this is a slice, not a decode; anything else
    (foreign bytes) gives "".
    """
    if not value.startswith(_TYPE_PREFIX):
        return ""
    end = value.find(b'"', len(_TYPE_PREFIX))
    return value[len(_TYPE_PREFIX):end].decode() if end > 0 else ""


def headers(type_name: str, event_id: str) -> list[tuple[str, bytes]]:
    """The headers every firetape record carries."""
    return [(TYPE_HEADER, type_name.encode()), (EVENT_ID_HEADER, event_id.encode())]


class Watermark(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """From the feed, after every bar of time `ts_event` is on md.bars: `offsets` maps each
    md.bars partition written for that time to the offset of its last bar then.

    A merge of partitions can release time t exactly when it has seen those offsets, so
    partitions without symbols and the end of a stream never stall it.
    """

    ts_event: int
    run_id: str
    offsets: dict[int, int]
    producer: str = "feed"


Signal = Union[SignalGenerated, StrategyFailed]


class Evaluation(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """The strategy agent's answer to one md.bars record: the bar and, in order, the events
    the strategy stage made for it. One per input record (even when there are no signals,
    and with `bar` None for a record that went to the dead-letter topic), so the account's
    merge sees every md.bars offset covered."""

    source_partition: int
    source_offset: int
    bar: Bar | None
    events: list[Signal] = []


# Every operator command the registry allows on `control` (so a new one can never be
# undecodable in account.sequence).
Control = Union[spec("control").values]


class Sequenced(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """One input of an account's stages, in the order they were run: an evaluated bar or
    an operator command, with where it came from. The account agent writes it in the same
    transaction as the outputs it caused; replaying these records rebuilds the stages."""

    account: str
    source_topic: str
    source_partition: int
    source_offset: int        # offset on md.bars (evaluations) or control
    input_offset: int         # offset on the topic the account agent read it from
    watermark_offset: int = -1
    evaluation: Evaluation | None = None
    control: Control | None = None


watermark_codec = (msgspec.json.Encoder().encode, msgspec.json.Decoder(Watermark).decode)
evaluation_codec = (msgspec.json.Encoder().encode, msgspec.json.Decoder(Evaluation).decode)
sequenced_codec = (msgspec.json.Encoder().encode, msgspec.json.Decoder(Sequenced).decode)
