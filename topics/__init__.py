"""The topic registry: the single source of truth for names, keys, schemas and owners."""
from topics.registry import REGISTRY, TopicSpec, spec, topic_of
from topics.codec import TopicCodec, codec

__all__ = ["REGISTRY", "TopicSpec", "TopicCodec", "codec", "spec", "topic_of"]
