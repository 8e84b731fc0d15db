"""One reusable encoder and decoder per topic (JSON, so any Kafka client can read it).

The value union of a topic is decoded with a single tagged-union decoder; unknown fields
are ignored so that old consumers survive new producers.
"""
from __future__ import annotations

from functools import cache
from typing import Union

import msgspec

from topics.registry import spec


class TopicCodec:
    """Encoder/decoder pair for one topic."""

    __slots__ = ("topic", "encode", "encode_into", "decode", "key_field")

    def __init__(self, topic: str) -> None:
        topic_spec = spec(topic)
        self.topic = topic
        self.key_field = topic_spec.key
        union = Union[topic_spec.values] if len(topic_spec.values) > 1 else topic_spec.values[0]
        encoder = msgspec.json.Encoder()
        self.encode = encoder.encode
        # The same bytes written into a caller's bytearray (see EmbeddedBus._process).
        self.encode_into = encoder.encode_into
        self.decode = msgspec.json.Decoder(union).decode

    def key(self, event) -> bytes:
        return getattr(event, self.key_field).encode()


@cache
def codec(topic: str) -> TopicCodec:
    """The shared codec of `topic` (built once)."""
    return TopicCodec(topic)
