from decimal import Decimal

import pytest

from agents.context import Context
from firetape.eventlog import EventLog
from firetape.runtime.bus import EmbeddedBus
from schemas import Bar, DeadLettered, FillExecuted, PositionChanged, SignalGenerated
from tests import factories as f
from topics.codec import codec


class Recorder:
    """A stage that notes what it saw and answers bars with a signal."""

    def __init__(self, name, seen, answer=False, fail_on=None, consumes=(Bar,)):
        self.name, self.seen, self.answer, self.fail_on = name, seen, answer, fail_on
        self.consumes = consumes
        self.ctx = Context("run", name)

    def routes(self):
        handlers = {Bar: self.on_bar, SignalGenerated: self.on_signal,
                    FillExecuted: self.on_fill}
        return {t: handlers[t] for t in self.consumes}

    def on_bar(self, bar):
        self.seen.append((self.name, "bar", bar.symbol))
        if self.fail_on == bar.symbol:
            raise RuntimeError("boom")
        if self.answer:
            return (SignalGenerated(**self.ctx.header(bar), strategy="s", symbol=bar.symbol,
                                    direction=1, confidence=1.0, price=bar.close),)
        return ()

    def on_signal(self, signal):
        self.seen.append((self.name, "signal", signal.symbol))
        return ()

    def on_fill(self, fill):
        return (PositionChanged(**self.ctx.header(fill), account="paper", strategy="s",
                                symbol=fill.symbol, quantity=fill.quantity,
                                avg_price=fill.price, realized_pnl=Decimal(0),
                                fill_id=fill.fill_id),)

    def finish(self, last):
        return ()


def test_dispatch_when_stages_given_then_registry_consumer_order_and_depth_first():
    seen = []
    # given in the "wrong" order on purpose: the registry says execution before strategy
    strategy = Recorder("strategy", seen)
    allocator = Recorder("allocator", seen, consumes=(SignalGenerated,))
    execution = Recorder("execution", seen, answer=True)   # any stage's output will do
    bus = EmbeddedBus([strategy, allocator, execution])
    bus.publish(f.bar("AAA"))
    assert seen == [("execution", "bar", "AAA"),
                    ("allocator", "signal", "AAA"),   # the output is drained first ...
                    ("strategy", "bar", "AAA")]       # ... before the next bar consumer


def test_dispatch_when_stage_raises_then_input_is_dead_lettered_and_others_go_on(tmp_path):
    seen = []
    with EventLog(tmp_path, mode="a") as log:
        bus = EmbeddedBus([Recorder("execution", seen, fail_on="AAA"),
                           Recorder("strategy", seen)], log, "run")
        bus.publish(f.bar("AAA"))
        bus.publish(f.bar("BBB"))
        log.flush()
        (record,) = list(log.read("dlq"))
    letter = codec("dlq").decode(record.value)
    assert isinstance(letter, DeadLettered)
    assert (letter.source_topic, letter.stage) == ("md.bars", "execution")
    assert "RuntimeError: boom" in letter.reason
    assert codec("md.bars").decode(letter.payload).symbol == "AAA"
    assert ("strategy", "bar", "AAA") in seen and ("strategy", "bar", "BBB") in seen
    assert bus.dead_letters == 1


def test_wire_when_stage_is_not_a_registered_consumer_then_start_up_fails():
    with pytest.raises(ValueError, match="not a registered consumer"):
        EmbeddedBus([Recorder("portfolio", [], consumes=(SignalGenerated,))])


def test_publish_when_logged_then_every_event_is_in_its_topic_partition(tmp_path):
    with EventLog(tmp_path, mode="a") as log:
        bus = EmbeddedBus([Recorder("strategy", [], answer=True),
                           Recorder("allocator", [], consumes=(SignalGenerated,))],
                          log, "run")
        for symbol in ("AAA", "BBB", "CCC"):
            bus.publish(f.bar(symbol))
        log.flush()
        assert bus.counts() == {"md.bars": 3, "signals": 3}
        assert sum(1 for _ in log.read("signals")) == 3
        keys = {r.key for r in log.read("md.bars")}
    assert keys == {b"AAA", b"BBB", b"CCC"}
