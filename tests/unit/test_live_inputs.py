"""How a live run's inputs are stamped and read back in the loop's order for replay."""
from __future__ import annotations

from decimal import Decimal

import msgspec

from firetape.eventlog import EventLog
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.live_inputs import InputClock, Undecodable, recorded_inputs
from schemas import BrokerBalanceRead, KillSwitchEngaged
from tests.factories import ACCOUNT, T0, bar, header


def test_stamp_when_clock_stands_still_or_goes_back_then_stamps_still_increase():
    times = iter([100, 100, 90, 200])
    clock = InputClock(lambda: next(times))
    assert [clock.stamp() for _ in range(4)] == [100, 101, 102, 200]
    assert clock.stamp(150) == 201


def test_recorded_inputs_when_topics_interleave_then_read_back_in_stamp_order(tmp_path):
    stamps = [T0 + 3, T0 + 1, T0 + 2]
    inputs = [
        msgspec.structs.replace(bar("AAA", T0), ts_init=stamps[0]),
        BrokerBalanceRead(**{**header(T0, "broker"), "ts_init": stamps[1]}, account=ACCOUNT,
                          equity=Decimal(1), buying_power=Decimal(1)),
        KillSwitchEngaged(**{**header(T0, "operator"), "ts_init": stamps[2]}, account=ACCOUNT,
                          reason="test"),
    ]
    with EventLog(tmp_path / "log", mode="a") as log:
        bus = EmbeddedBus([], log, "run")
        for event in inputs:
            bus.publish(event)
        log.partition_log("md.bars", 0).append(b"AAA", b"{not json", T0, 0)
        log.flush()
        read = list(recorded_inputs(log))
    assert isinstance(read[0], Undecodable) and read[0].topic == "md.bars"
    assert [e.ts_init for e in read[1:]] == sorted(stamps)
