"""What a stage gets from outside: its name, the run id and a deterministic id source.

There is no clock here on purpose: a stage's "now" is the `ts_init` of the input it is
handling, so a replay of the same inputs recreates every timestamp and every id.
"""
from __future__ import annotations

from hashlib import blake2b

from schemas.header import Event


class Context:
    """Per-stage context: producer name, run id, deterministic event ids and headers."""

    __slots__ = ("run_id", "producer", "account", "_key", "_keyed")

    def __init__(self, run_id: str, producer: str, account: str = "paper") -> None:
        self.run_id = run_id
        self.producer = producer
        self.account = account
        self._key = run_id.encode()[:64]
        # The keyed hash before any input: copying it is cheaper than keying a new one,
        # and every event of a run gets an id (see header).
        self._keyed = blake2b(digest_size=16, key=self._key)

    def __reduce__(self):
        # A hash object cannot be pickled; the Kafka strategy agent pickles stages (with
        # their contexts) into snapshots, so a context is rebuilt from what made it.
        return (Context, (self.run_id, self.producer, self.account))

    def derive_id(self, *parts: object) -> str:
        """A 32-hex id from the run id and `parts`; the same inputs give the same id."""
        digest = self._keyed.copy()
        digest.update("|".join(map(str, parts)).encode())
        return digest.hexdigest()

    def event_id(self, cause: Event, index: int = 0) -> str:
        """The id of the `index`-th event this stage makes because of `cause`:
        derive_id(producer, cause.event_id, index).

        Hot stages build their events with explicit header keywords and this id:
        `Event(**ctx.header(...), ...)` costs several times as much per event.
        """
        digest = self._keyed.copy()
        digest.update(f"{self.producer}|{cause.event_id}|{index}".encode())
        return digest.hexdigest()

    def header(self, cause: Event, index: int = 0, *, ts_event: int | None = None,
               now: int | None = None) -> dict:
        """Header fields for the `index`-th event this stage makes because of `cause`.

        The new event joins the cause's correlation chain. `ts_event` defaults to the
        cause's, `now` (the new event's ts_init) to the cause's ts_init.
        """
        event_id = cause.event_id
        # derive_id(self.producer, event_id, index), inlined
        digest = self._keyed.copy()
        digest.update(f"{self.producer}|{event_id}|{index}".encode())
        return {
            "event_id": digest.hexdigest(),
            "ts_event": cause.ts_event if ts_event is None else ts_event,
            "ts_init": cause.ts_init if now is None else now,
            "correlation_id": cause.correlation_id,
            "causation_id": event_id,
            "producer": self.producer,
            "run_id": self.run_id,
        }
