"""The Kafka replay's range bounds and the audit agent's sink binding, without a broker."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from firetape.kafka.audit_agent import AuditAgent
from firetape.kafka.replay import Bound, ReplayRangeError
from firetape.kafka.settings import AgentSettings


def test_parse_when_digits_then_offset_else_utc_time():
    assert Bound.parse("42", "start") == Bound(offset=42)
    assert Bound.parse(None, "end") == Bound()
    assert Bound.parse("2024-01-02T14:30Z", "start").ts == 1704205800 * 10**9
    assert Bound.parse("2024-01-02 14:30", "start").ts == 1704205800 * 10**9   # UTC default
    assert Bound.parse("2024-01-02T15:30+01:00", "end").ts == 1704205800 * 10**9


@pytest.mark.parametrize("text", ["-3", "soon", "2024-13-45"])
def test_parse_when_neither_offset_nor_time_then_error_names_the_option(text):
    with pytest.raises(ReplayRangeError, match="--start"):
        Bound.parse(text, "start")


class _Store:
    def __init__(self) -> None:
        self.batches = []

    def insert_batch(self, batch) -> None:
        self.batches.append(batch)


def test_add_when_batch_stored_then_committable_offsets_of_the_cluster_topics():
    from firetape.audit.sink import AuditSink

    agent = AuditAgent(AgentSettings(bootstrap="unused:9092", prefix="ns."))
    store = _Store()
    agent._sink = AuditSink(store, batch_rows=3, max_delay_s=60)
    record = SimpleNamespace(offset=0, value=b"{}", timestamp=1700000000000, key=b"k")
    from aiokafka import TopicPartition

    batch = {TopicPartition("ns.fills", 2): [
        SimpleNamespace(**{**vars(record), "offset": o}) for o in (5, 6, 7)]}
    advanced = agent._add(batch)
    assert advanced == {("fills", 2): 8}               # stored, then committable
    stored = store.batches[0]
    assert stored.topic == ["fills"] * 3               # registry names, no namespace
    assert stored.ts_ingest_ns == [1700000000000 * 10**6] * 3   # from the record
    assert agent.group_id == "firetape-ns-audit-sink"
