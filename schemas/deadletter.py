"""Dead letters: what could not be decoded or validated, with the reason and the bytes."""
from schemas.header import Event


class DeadLettered(Event, frozen=True, kw_only=True, gc=False):
    source_topic: str
    source_partition: int
    source_offset: int
    stage: str
    reason: str
    payload: bytes   # the original record value, untouched (base64 in JSON)
