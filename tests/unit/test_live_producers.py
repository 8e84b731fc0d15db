"""The live loop's order submissions: retried while the outcome is unknown (each attempt is
idempotent), and their outcome handed back as a broker-report input."""
from __future__ import annotations

import asyncio

import msgspec

from connectors.alpaca import wire
from connectors.alpaca.client import SubmitOutcome
from connectors.alpaca.errors import BrokerRefused, BrokerTimeout
from firetape.runtime.live_inputs import InputClock
from firetape.runtime.live_producers import SUBMIT_ATTEMPTS, submit_order
from schemas import BrokerOrderRefused, BrokerOrderSubmitted
from tests.factories import place_order
from tests.fixtures.alpaca.recorded import load


class ScriptedBroker:
    """AsyncAlpaca's submit answering from a script: an exception is raised, else returned."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def submit(self, order):
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def submit(broker) -> list:
    put: list = []
    asyncio.run(submit_order(broker, place_order(), put.append, InputClock(lambda: 1),
                             backoff=0.0))
    return put


def test_submit_when_first_attempt_times_out_then_retried_and_found_by_client_order_id():
    found = msgspec.convert(load("order_new"), wire.Order, strict=False)
    broker = ScriptedBroker(BrokerTimeout("slow"), SubmitOutcome(found, existing=True,
                                                                 attempts=1))
    reports = submit(broker)
    assert broker.calls == 2
    assert [type(r) for r in reports] == [BrokerOrderSubmitted]
    assert reports[0].existing and reports[0].broker_order_id == found.id


def test_submit_when_outcome_stays_unknown_then_refusal_says_so_after_every_attempt():
    broker = ScriptedBroker(BrokerTimeout("slow"))
    reports = submit(broker)
    assert broker.calls == SUBMIT_ATTEMPTS
    assert isinstance(reports[0], BrokerOrderRefused)
    assert reports[0].reason.startswith("outcome unknown:")


def test_submit_when_lookup_refused_then_refusal_with_the_reason_and_no_retry():
    broker = ScriptedBroker(BrokerRefused(403, 40310000, "forbidden"))
    reports = submit(broker)
    assert broker.calls == 1
    assert isinstance(reports[0], BrokerOrderRefused) and "forbidden" in reports[0].reason
