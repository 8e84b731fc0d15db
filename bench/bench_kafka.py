"""The Kafka pipeline on a real broker: throughput and bar-to-order/fill latency.

    firetape kafka up                       # or export KAFKA_BOOTSTRAP=host:port
    .venv/bin/python bench/bench_kafka.py [--commit-interval 0.1] [--linger-ms 0]
                                          [--fetch-wait-ms 5] [--symbols 20] [--bars 1000]

* per worker: bars are published to a fresh namespace first, then each agent runs alone
  over that backlog in its own worker (`firetape agent strategy`, then `firetape agent
  account`); time = first to last output record (Kafka timestamps, so start-up and group
  join are excluded). Reported: input records/s, and events/s = records read + written;
* throughput: `firetape agents` (strategy + account agents in one faust worker) in a
  subprocess on another namespace; publishes synthetic bars as fast as possible and times
  the first bar sent to the last input committed to account.sequence; reports bars/s and
  pipeline events/s (every record the agents wrote: evaluations, signals, sequence,
  orders, fills, ...);
* latency at 100 bars/s: publishes 10 symbols of 1-minute bars paced to 100 bars/s while
  a consumer (read_committed, i.e. what any downstream reader can see) timestamps each
  OrderSubmitted and FillExecuted on arrival; latency = arrival - the bar's send time, by
  the correlation id. p50 / p99 / p99.9 in ms.

Settings that matter, all printed with the results: the strategy agent's commit interval
(at-least-once: outputs are flushed before each commit of input offsets), producer linger,
consumer fetch wait. Everything (broker, publisher, agents) shares the machine's cores.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from connectors.synthetic import generate_bars  # noqa: E402
from firetape.kafka import broker, clients  # noqa: E402
from firetape.kafka.admin import create_topics_async  # noqa: E402
from firetape.kafka.publish import publish_bars  # noqa: E402
from firetape.kafka.readback import read_topic  # noqa: E402
from firetape.kafka.settings import AgentSettings  # noqa: E402
from topics.registry import TopicSpec  # noqa: E402

OUTPUT_TOPICS = ("strategy.evaluated", "signals", "account.sequence", "order.requests",
                 "risk.decisions", "orders", "order.updates", "fills", "portfolio")


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {}
    ordered = sorted(values_ms)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)
    return {"n": len(ordered), "p50": pick(0.50), "p99": pick(0.99), "p99.9": pick(0.999),
            "max": round(ordered[-1], 2)}


class Agents:
    def __init__(self, settings: AgentSettings, args, workdir: Path,
                 command: tuple[str, ...] = ("agents", "--no-audit")) -> None:
        env = dict(os.environ, KAFKA_BOOTSTRAP=settings.bootstrap,
                   FIRETAPE_TOPIC_PREFIX=settings.prefix,
                   FIRETAPE_CONFIG=str(REPO / "config" / "demo.toml"),
                   FIRETAPE_AGENT_DIR=str(workdir),
                   FIRETAPE_COMMIT_INTERVAL_S=str(args.commit_interval),
                   FIRETAPE_LINGER_MS=str(args.linger_ms),
                   FIRETAPE_FETCH_WAIT_MS=str(args.fetch_wait_ms))
        self.log = open(workdir / f"{'-'.join(command)}.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "firetape.cli", *command],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=REPO)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Counter:
    """Counts the committed records of a topic as they arrive (a tailing consumer, so
    waiting for a count does not re-read the topic)."""

    def __init__(self, settings: AgentSettings, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(settings.prefix + topic,
                                         bootstrap_servers=settings.bootstrap, group_id=None,
                                         isolation_level="read_committed",
                                         auto_offset_reset="earliest", fetch_max_wait_ms=20)
        self.count = 0
        self.last_ms = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> Counter:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                self.count += len(records)
                self.last_ms = max([self.last_ms] + [r.timestamp for r in records])

    async def wait_for(self, count: int, timeout: float) -> float:
        """The monotonic time at which `count` records had been seen."""
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.consumer.subscription()}: {self.count} of {count} "
                                 f"records after {timeout:.0f} s")
            await asyncio.sleep(0.01)
        return time.monotonic()

    async def stop(self) -> None:
        self._task.cancel()
        await self.consumer.stop()


async def _warm_up(settings: AgentSettings, sequenced: Counter) -> None:
    # One time of bars through the whole pipeline: the agents have joined and are idle.
    frame = generate_bars(2, 1, seed=1, interval="1min", start="2020-01-01")
    await publish_bars(settings, frame, "warmup")
    await sequenced.wait_for(2, 120)


async def _written(settings: AgentSettings, topics) -> int:
    return sum([len(await read_topic(settings.bootstrap, settings.prefix + t)) for t in topics])


async def per_worker(bootstrap: str, args, workdir: Path) -> dict:
    """Each agent alone on a backlog of `args.symbols` x `args.bars` bars."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}-alone."
    settings = AgentSettings(bootstrap=bootstrap, prefix=prefix, linger_ms=args.linger_ms)
    frame = generate_bars(args.symbols, args.bars, seed=11, interval="1min", start="2021-01-04")
    published = await publish_bars(settings, frame, "alone")
    out = {"bars": published.bars,
           "publish_bars_per_s": round(published.bars / published.seconds)}
    # agent: (its last output, everything it writes, what it reads)
    stages = {"strategy": ("strategy.evaluated", ("strategy.evaluated", "signals"),
                           published.bars),
              "account": ("account.sequence", OUTPUT_TOPICS[2:],
                          published.bars + published.times)}   # evaluations + watermarks
    for name, (last_topic, outputs, read) in stages.items():
        counter = await Counter(settings, last_topic).start()
        agent = Agents(settings, args, workdir, ("agent", name))
        try:
            await counter.wait_for(published.bars, 600)
        finally:
            agent.stop()
            await counter.stop()
        records = await read_topic(settings.bootstrap, prefix + last_topic)
        seconds = (max(r.timestamp_ms for r in records) - min(r.timestamp_ms for r in records)) / 1e3
        written = await _written(settings, outputs)
        out[name] = {"seconds": round(seconds, 2),
                     "bars_per_s": round(published.bars / seconds),
                     "events_per_s": round((read + written) / seconds),
                     "records_read": read, "records_written": written}
    return out


async def throughput(settings: AgentSettings, sequenced: Counter, symbols: int,
                     bars: int) -> dict:
    frame = generate_bars(symbols, bars, seed=11, interval="1min", start="2021-01-04")
    before = sequenced.count
    written_before = await _written(settings, OUTPUT_TOPICS)
    started = time.monotonic()
    published = await publish_bars(settings, frame, "throughput")
    finished = await sequenced.wait_for(before + published.bars, 600)
    seconds = finished - started
    written = await _written(settings, OUTPUT_TOPICS) - written_before
    return {"bars": published.bars, "seconds": round(seconds, 2),
            "bars_per_s": round(published.bars / seconds), "agent_records": written,
            "pipeline_events_per_s": round((written + published.bars) / seconds),
            "publish_only_bars_per_s": round(published.bars / published.seconds)}


async def floors(bootstrap: str, samples: int = 300) -> dict:
    """What the broker alone costs on this machine, for scale: one record produced and
    read back by a consumer (one hop), and one Kafka transaction (begin, one send, commit)
    until a read_committed consumer sees the record. The pipeline has two hops before the
    account agent and a transaction after it."""
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    settings = AgentSettings(bootstrap=bootstrap)
    await create_topics_async(bootstrap, (TopicSpec(topic, "k", (), 1, "delete", -1, "bench",
                                                    (), "latency floor"),))
    out = {}
    for name, transactional in (("one_hop_ms", False), ("transaction_ms", True)):
        producer = clients.producer(settings, f"{topic}-tx" if transactional else None)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    isolation_level="read_committed",
                                    auto_offset_reset="latest", fetch_max_wait_ms=5)
        await producer.start()
        await consumer.start()
        await consumer.seek_to_end()
        times = []
        try:
            for _ in range(samples):
                start = time.perf_counter_ns()
                if transactional:
                    async with producer.transaction():
                        await producer.send(topic, b"x", key=b"k")
                else:
                    await producer.send(topic, b"x", key=b"k")
                while not await consumer.getmany(timeout_ms=100):
                    pass
                times.append((time.perf_counter_ns() - start) / 1e6)
                await asyncio.sleep(0.005)
        finally:
            await consumer.stop()
            await producer.stop()
        out[name] = _percentiles(times)
    return out


async def latency(settings: AgentSettings, sequenced: Counter, seconds: float) -> dict:
    symbols, rate = 10, 100.0
    times = int(seconds * rate / symbols)
    frame = generate_bars(symbols, times, seed=21, interval="1min", start="2022-01-03")
    speed = 60.0 * rate / symbols            # one-minute bars: 10 times per wall second
    sent: dict[str, int] = {}
    arrived: dict[str, list[tuple[int, str]]] = {"order.updates": [], "fills": []}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None,
                                isolation_level="read_committed", fetch_max_wait_ms=5,
                                enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(settings.prefix + t, p) for t in arrived for p in range(4)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    done = asyncio.Event()

    async def collect() -> None:
        while not done.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time_ns()
            for tp, records in batch.items():
                topic = tp.topic[len(settings.prefix):]
                for record in records:
                    event = json.loads(record.value)
                    if topic == "fills" or event["type"] == "OrderSubmitted":
                        arrived[topic].append((now, event["correlation_id"]))

    collector = asyncio.create_task(collect())
    before = sequenced.count
    result = await publish_bars(settings, frame, "latency", speed=speed,
                                on_sent=lambda bar, ns: sent.__setitem__(bar.event_id, ns))
    await sequenced.wait_for(before + result.bars, 120)
    await asyncio.sleep(1.0)
    done.set()
    await collector
    await consumer.stop()

    def hop(topic: str) -> dict:
        return _percentiles([(ns - sent[cid]) / 1e6 for ns, cid in arrived[topic] if cid in sent])
    return {"bars": result.bars, "achieved_bars_per_s": round(result.bars / result.seconds, 1),
            "bar_to_order_submitted_ms": hop("order.updates"), "bar_to_fill_ms": hop("fills")}


async def main(args) -> dict:
    bootstrap = broker.external_bootstrap() or broker.local_bootstrap(
        broker.BrokerConfig.from_env())
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    settings = AgentSettings(bootstrap=bootstrap, prefix=prefix, linger_ms=args.linger_ms)
    workdir = Path(args.workdir) / prefix.strip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    out = {"settings": {"commit_interval_s": args.commit_interval,
                        "linger_ms": args.linger_ms, "fetch_wait_ms": args.fetch_wait_ms,
                        "bootstrap": bootstrap, "cpus": os.cpu_count()}}
    out["broker_floor"] = await floors(bootstrap)
    out["per_worker"] = await per_worker(bootstrap, args, workdir)
    await clients.ensure_topics(settings)
    sequenced = await Counter(settings, "account.sequence").start()
    agents = Agents(settings, args, workdir)
    try:
        await _warm_up(settings, sequenced)
        out["throughput"] = await throughput(settings, sequenced, args.symbols, args.bars)
        out["latency_at_100_bars_per_s"] = await latency(settings, sequenced,
                                                         args.latency_seconds)
        return out
    finally:
        agents.stop()
        await sequenced.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commit-interval", type=float, default=0.1)
    parser.add_argument("--linger-ms", type=int, default=0)
    parser.add_argument("--fetch-wait-ms", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--bars", type=int, default=1000,
                        help="bars per symbol (per worker and throughput)")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--workdir", default="/tmp/firetape-bench-kafka")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
