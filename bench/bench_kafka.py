"""The Kafka pipeline on a real broker: throughput and bar-to-order/fill latency.

    firetape kafka up                       # or export KAFKA_BOOTSTRAP=host:port
    .venv/bin/python bench/bench_kafka.py [--commit-interval S] [--linger-ms N]
                                          [--commit-interval 0.1] [--linger-ms 0]

Runs `firetape agents` (strategy + account agents in one faust worker) in a subprocess on
a fresh topic namespace, then:

* throughput: publishes synthetic bars as fast as possible and times the first bar sent
  to the last input committed to account.sequence; reports bars/s and pipeline events/s
  (every record the agents wrote: evaluations, signals, sequence, orders, fills, ...);
* latency at 100 bars/s: publishes 10 symbols of 1-minute bars paced to 100 bars/s while
  a consumer (read_committed, i.e. what any downstream reader can see) timestamps each
  OrderSubmitted and FillExecuted on arrival; latency = arrival - the bar's send time, by
  the correlation id. p50 / p99 / p99.9 in ms.

Settings that matter, all printed with the results: the strategy agent's commit interval
(at_least_once: outputs are flushed before each commit), producer linger, consumer fetch
wait.
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
from firetape.kafka import broker  # noqa: E402
from firetape.kafka.publish import publish_bars  # noqa: E402
from firetape.kafka.readback import read_topic  # noqa: E402
from firetape.kafka.settings import AgentSettings  # noqa: E402

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
    def __init__(self, settings: AgentSettings, args, workdir: Path) -> None:
        env = dict(os.environ, KAFKA_BOOTSTRAP=settings.bootstrap,
                   FIRETAPE_TOPIC_PREFIX=settings.prefix,
                   FIRETAPE_CONFIG=str(REPO / "config" / "demo.toml"),
                   FIRETAPE_AGENT_DIR=str(workdir), FIRETAPE_PROCESSING_GUARANTEE=args.guarantee,
                   FIRETAPE_COMMIT_INTERVAL_S=str(args.commit_interval),
                   FIRETAPE_LINGER_MS=str(args.linger_ms),
                   FIRETAPE_FETCH_WAIT_MS=str(args.fetch_wait_ms))
        self.log = open(workdir / "agents.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "firetape.cli", "agents"],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=REPO)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def _sequence_count(settings: AgentSettings) -> int:
    return len(await read_topic(settings.bootstrap, settings.prefix + "account.sequence"))


async def _wait_sequenced(settings: AgentSettings, count: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _sequence_count(settings) >= count:
            return time.monotonic()
        await asyncio.sleep(0.2)
    raise SystemExit(f"the agents did not sequence {count} bars in {timeout:.0f} s")


async def _warm_up(settings: AgentSettings) -> None:
    # One time of bars through the whole pipeline: the agents have joined and are idle.
    frame = generate_bars(2, 1, seed=1, interval="1min", start="2020-01-01")
    await publish_bars(settings, frame, "warmup")
    await _wait_sequenced(settings, 2, 120)


async def throughput(settings: AgentSettings, symbols: int, bars: int) -> dict:
    frame = generate_bars(symbols, bars, seed=11, interval="1min", start="2021-01-04")
    before = await _sequence_count(settings)
    counts_before = {t: len(await read_topic(settings.bootstrap, settings.prefix + t))
                     for t in OUTPUT_TOPICS}
    started = time.monotonic()
    published = await publish_bars(settings, frame, "throughput")
    finished = await _wait_sequenced(settings, before + published.bars, 600)
    seconds = finished - started
    written = 0
    for topic in OUTPUT_TOPICS:
        records = await read_topic(settings.bootstrap, settings.prefix + topic)
        written += len(records) - counts_before[topic]
    return {"bars": published.bars, "seconds": round(seconds, 2),
            "bars_per_s": round(published.bars / seconds), "agent_records": written,
            "pipeline_events_per_s": round((written + published.bars) / seconds),
            "publish_only_bars_per_s": round(published.bars / published.seconds)}


async def latency(settings: AgentSettings, seconds: float) -> dict:
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
    before = await _sequence_count(settings)
    result = await publish_bars(settings, frame, "latency", speed=speed,
                                on_sent=lambda bar, ns: sent.__setitem__(bar.event_id, ns))
    await _wait_sequenced(settings, before + result.bars, 120)
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
    agents = Agents(settings, args, workdir)
    try:
        await _warm_up(settings)
        out = {"settings": {"guarantee": args.guarantee, "commit_interval_s": args.commit_interval,
                            "linger_ms": args.linger_ms, "fetch_wait_ms": args.fetch_wait_ms,
                            "bootstrap": bootstrap, "cpus": os.cpu_count()}}
        out["throughput"] = await throughput(settings, args.symbols, args.bars)
        out["latency_at_100_bars_per_s"] = await latency(settings, args.latency_seconds)
        return out
    finally:
        agents.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--guarantee", default="at_least_once", choices=["at_least_once"])
    parser.add_argument("--commit-interval", type=float, default=0.1)
    parser.add_argument("--linger-ms", type=int, default=0)
    parser.add_argument("--fetch-wait-ms", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--bars", type=int, default=500, help="bars per symbol (throughput)")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--workdir", default="/tmp/firetape-bench-kafka")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
