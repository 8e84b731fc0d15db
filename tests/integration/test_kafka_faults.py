"""Crashes on a real broker: SIGKILL the account worker (risk, execution, portfolio,
allocator) and the strategy worker mid-stream, restart them, and get exactly the orders,
fills and decisions of an uninterrupted embedded backtest: none missing, none twice."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from firetape.kafka.readback import digest, read_topic
from tests.integration.kafka_harness import AgentProcess, embedded_run, publish_cli, \
    wait_for_count

pytestmark = pytest.mark.kafka

ORDER_TOPICS = ("order.requests", "risk.decisions", "orders", "order.updates", "fills",
                "portfolio")


def _ids(records, field: bytes) -> Counter:
    found = Counter()
    for record in records:
        start = record.value.index(field) + len(field)
        found[record.value[start:record.value.index(b'"', start)]] += 1
    return found


def _crash_run(bootstrap: str, tmp_path, prefix: str, kill: str):
    """The sample through separate strategy and account workers; `kill` is SIGKILLed once
    it has made 60 fills' worth of progress, and started again. Returns the reference
    (embedded backtest) and the topics read back."""
    reference = embedded_run(tmp_path / "runs")
    workers = {name: AgentProcess(bootstrap, prefix, tmp_path, "agent", name).start()
               for name in ("strategy", "account")}
    feed = publish_cli(bootstrap, prefix, speed=f"{86400 * 50}x", wait=False)
    try:
        wait_for_count(bootstrap, prefix + "fills", 60, agents=tuple(workers.values()))
        workers[kill].kill()
        workers[kill] = AgentProcess(bootstrap, prefix, tmp_path, "agent", kill).start()
        assert feed.wait(timeout=120) == 0
        wait_for_count(bootstrap, prefix + "account.sequence", reference.bars,
                       agents=tuple(workers.values()))
    finally:
        if feed.poll() is None:
            feed.kill()
        for worker in workers.values():
            worker.stop()
    topics = {t: asyncio.run(read_topic(bootstrap, prefix + t)) for t in ORDER_TOPICS}
    return reference, topics


def _assert_exactly_the_backtest(reference, topics) -> None:
    orders = _ids(topics["orders"], b'"client_order_id":"')
    fills = _ids(topics["fills"], b'"fill_id":"')
    assert [i for i, n in orders.items() if n > 1] == []
    assert [i for i, n in fills.items() if n > 1] == []
    assert len(orders) == reference.counts["orders"]
    assert len(fills) == reference.counts["fills"]
    for topic in ORDER_TOPICS[:-1]:
        assert digest(topics[topic]) == reference.digests[topic], topic
    assert [r.value for r in topics["portfolio"]] == reference.values("portfolio")[:-1]


def test_sigkill_when_account_worker_crashes_mid_stream_then_no_duplicate_and_no_missing_orders(
        kafka_bootstrap, tmp_path):
    _assert_exactly_the_backtest(*_crash_run(kafka_bootstrap, tmp_path, "crash-account.",
                                             "account"))


# KNOWN FAILURE (not strict: it passes now and then). After a SIGKILL of the strategy
# worker the orders come out short (e.g. 303 of 313) with no duplicate: the strategy state
# recovered from the faust table changelog has missed bars whose offsets were committed.
# faust writes table changelogs through its buffered send_soon, not through our awaited
# sends; see docs/kafka.md. Kept visible rather than removed until the strategy state is
# made atomic with its evaluations.
@pytest.mark.xfail(strict=False, reason="faust table changelog vs. committed offsets after "
                   "SIGKILL is not always consistent (see docs/kafka.md)")
def test_sigkill_when_strategy_worker_crashes_mid_stream_then_no_duplicate_and_no_missing_orders(
        kafka_bootstrap, tmp_path):
    _assert_exactly_the_backtest(*_crash_run(kafka_bootstrap, tmp_path, "crash-strategy.",
                                             "strategy"))
