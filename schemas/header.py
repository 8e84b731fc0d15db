"""The header every event carries, and the base class that gives it."""
import msgspec

SCHEMA_VERSION = 1


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True, gc=False):
    """Base of every event: the DESIGN.md header, then the family's own fields.

    Times are integer nanoseconds since the epoch, UTC. `ts_event` is when the thing
    happened (in event time: the bar's close, the fill's bar); `ts_init` is when the event
    was created by the stage's clock, which in firetape is the event time of the input that
    caused it, so a replay recreates it exactly. Wall-clock hop times live beside the event,
    in the log record, not inside it.
    """

    event_id: str
    ts_event: int
    ts_init: int
    correlation_id: str   # shared by one bar -> signal -> order -> fill chain
    causation_id: str     # the event that caused this one ("" for external input)
    producer: str         # the stage that wrote it
    run_id: str
    schema_version: int = SCHEMA_VERSION
